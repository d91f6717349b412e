# ---------------------------------------------------------------------------
# The contract with the service (see README.md and test/deploy.test.ts):
# port 3000, GET /health -> 200, SIGTERM drains within SHUTDOWN_TIMEOUT_MS, which
# stays a few seconds below the container's stopTimeout so ECS never SIGKILLs a drain.
# ---------------------------------------------------------------------------

locals {
  container_port       = 3000
  stop_timeout_seconds = 30
  shutdown_timeout_ms  = 25000

  # The same probe as the Dockerfile's HEALTHCHECK (slim images have no curl).
  health_probe = "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"

  container_health_check = {
    command     = ["CMD", "node", "-e", local.health_probe]
    interval    = 15
    timeout     = 5
    retries     = 3
    startPeriod = 30
  }

  # Environment shared by both roles. null values are left out.
  common_environment = {
    HOST                = "0.0.0.0"
    PORT                = tostring(local.container_port)
    AWS_REGION          = var.region
    DYNAMODB_TABLE      = aws_dynamodb_table.this.name
    LOG_LEVEL           = var.log_level
    LOG_REQUESTS        = tostring(var.log_requests)
    COLLECTOR           = "off"
    SHUTDOWN_TIMEOUT_MS = tostring(local.shutdown_timeout_ms)
    STALE_AFTER_SECONDS = var.stale_after_seconds == null ? null : tostring(var.stale_after_seconds)
    RETENTION_DAYS      = var.retention_days == null ? null : tostring(var.retention_days)
  }

  # What differs per role. The api role needs no Kafka settings and no secret.
  role_environment = {
    api = {
      ROLE                  = "api"
      RATE_LIMIT_PER_MINUTE = var.rate_limit_per_minute == null ? null : tostring(var.rate_limit_per_minute)
      CORS_ORIGINS          = length(var.cors_origins) == 0 ? null : join(",", var.cors_origins)
    }
    ingest = {
      ROLE                    = "ingest"
      KAFKA_BROKERS           = join(",", var.kafka_brokers)
      KAFKA_TOPICS            = join(",", var.kafka_topics)
      KAFKA_GROUP_ID          = var.kafka_group_id
      KAFKA_DLQ_TOPIC         = var.kafka_dlq_topic
      KAFKA_SECURITY_PROTOCOL = var.kafka_security_protocol
      KAFKA_SASL_MECHANISM    = var.kafka_sasl_mechanism
      KAFKA_SASL_USERNAME     = var.kafka_sasl_username
    }
  }

  environment = {
    for role, env in local.role_environment :
    role => [for k, v in merge(local.common_environment, env) : { name = k, value = v } if v != null]
  }

  # The SASL password never appears as a plain value: ECS fetches it at task start
  # (execution role) from Secrets Manager or SSM Parameter Store.
  kafka_secrets = var.kafka_sasl_password_secret_arn == null ? [] : [
    { name = "KAFKA_SASL_PASSWORD", valueFrom = var.kafka_sasl_password_secret_arn },
  ]

  # API_KEYS the same way, for both roles (ingest serves /metrics and /health on the VPC too):
  # the keys are never in the HCL, the state or the task definition.
  api_keys_secrets = var.api_keys_secret_arn == null ? [] : [
    { name = "API_KEYS", valueFrom = var.api_keys_secret_arn },
  ]

  uses_sasl = var.kafka_sasl_mechanism != null && strcontains(upper(coalesce(var.kafka_security_protocol, "none")), "SASL")
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158: CloudWatch Logs encrypts at rest with AWS keys; the logs hold no keys or readings (a CMK is optional)
  #checkov:skip=CKV_AWS_338: retention is the operator's choice (log_retention_days), 30 days by default for cost
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name        = "api"
      image       = var.image
      essential   = true
      stopTimeout = local.stop_timeout_seconds
      portMappings = [
        { containerPort = local.container_port, hostPort = local.container_port, protocol = "tcp" },
      ]
      environment = local.environment.api
      secrets     = local.api_keys_secrets
      healthCheck = local.container_health_check
      linuxParameters = {
        initProcessEnabled = true
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = var.region
          awslogs-stream-prefix = "api"
          mode                  = "non-blocking"
          max-buffer-size       = "4m"
        }
      }
    },
  ])
}

resource "aws_ecs_task_definition" "ingest" {
  family                   = "${var.name}-ingest"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.ingest_cpu
  memory                   = var.ingest_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # ingest still listens on the port: /health backs the container health check.
  container_definitions = jsonencode([
    {
      name        = "ingest"
      image       = var.image
      essential   = true
      stopTimeout = local.stop_timeout_seconds
      portMappings = [
        { containerPort = local.container_port, hostPort = local.container_port, protocol = "tcp" },
      ]
      environment = local.environment.ingest
      secrets     = concat(local.kafka_secrets, local.api_keys_secrets)
      healthCheck = local.container_health_check
      linuxParameters = {
        initProcessEnabled = true
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = var.region
          awslogs-stream-prefix = "ingest"
          mode                  = "non-blocking"
          max-buffer-size       = "4m"
        }
      }
    },
  ])

  lifecycle {
    precondition {
      condition     = !local.uses_sasl || (var.kafka_sasl_username != null && var.kafka_sasl_password_secret_arn != null)
      error_message = "SASL (kafka_security_protocol SASL_* with kafka_sasl_mechanism) needs kafka_sasl_username and kafka_sasl_password_secret_arn."
    }
    precondition {
      condition     = var.kafka_sasl_mechanism == null || strcontains(upper(coalesce(var.kafka_security_protocol, "none")), "SASL")
      error_message = "kafka_sasl_mechanism is set but kafka_security_protocol is not SASL_SSL/SASL_PLAINTEXT: set both, or neither."
    }
  }
}

resource "aws_ecs_service" "api" {
  name             = "api"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.api.arn
  desired_count    = var.api_desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = local.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = local.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = local.container_port
  }

  # Application Auto Scaling owns the count after the first apply.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [
    aws_lb_listener.http,
    aws_lb_listener.https,
    aws_iam_role_policy.task_dynamodb,
    aws_iam_role_policy_attachment.execution_managed,
  ]
}

resource "aws_ecs_service" "ingest" {
  name             = "ingest"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.ingest.arn
  desired_count    = var.ingest_desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = local.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = local.assign_public_ip
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [
    aws_iam_role_policy.task_dynamodb,
    aws_iam_role_policy.execution_secrets,
    aws_iam_role_policy_attachment.execution_managed,
  ]
}
