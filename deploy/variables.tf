# ---------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------

variable "region" {
  description = "AWS region to deploy into (also the tasks' AWS_REGION). No default on purpose."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be an AWS region code such as eu-west-1."
  }
}

variable "name" {
  description = "Name prefix for every resource (ALB, cluster, roles, log group). Lowercase, at most 24 characters so that derived names fit AWS limits."
  type        = string
  default     = "sensors-api"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags merged into the provider's default_tags (applied to every resource)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Image and task sizes
# ---------------------------------------------------------------------------

variable "image" {
  description = "Container image for both roles, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/sensors-api:1.2.3 (prefer an immutable tag or @sha256 digest)."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must be set."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64 (ARM64 Fargate is ~20% cheaper; build the image with --platform linux/arm64)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "api_cpu" {
  description = "Fargate task CPU units for the api role (256 = 0.25 vCPU)."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.api_cpu)
    error_message = "api_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "api_memory" {
  description = "Fargate task memory (MiB) for the api role; must be a valid pairing with api_cpu."
  type        = number
  default     = 1024
}

variable "ingest_cpu" {
  description = "Fargate task CPU units for the ingest role."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.ingest_cpu)
    error_message = "ingest_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "ingest_memory" {
  description = "Fargate task memory (MiB) for the ingest role; must be a valid pairing with ingest_cpu."
  type        = number
  default     = 1024
}

# ---------------------------------------------------------------------------
# Counts and autoscaling
# ---------------------------------------------------------------------------

variable "api_desired_count" {
  description = "Initial number of api tasks (autoscaling owns it afterwards)."
  type        = number
  default     = 2
}

variable "api_min_count" {
  description = "Minimum number of api tasks."
  type        = number
  default     = 2

  validation {
    condition     = var.api_min_count >= 1
    error_message = "api_min_count must be at least 1 (the ALB needs a target)."
  }
}

variable "api_max_count" {
  description = "Maximum number of api tasks."
  type        = number
  default     = 6
}

variable "api_requests_per_target" {
  description = "Target tracking value: ALB requests per api task per minute (ALBRequestCountPerTarget)."
  type        = number
  default     = 1000
}

variable "ingest_desired_count" {
  description = "Initial number of ingest tasks (autoscaling owns it afterwards). More consumers than topic partitions sit idle."
  type        = number
  default     = 1
}

variable "ingest_min_count" {
  description = "Minimum number of ingest tasks (0 parks ingest)."
  type        = number
  default     = 1
}

variable "ingest_max_count" {
  description = "Maximum number of ingest tasks; keep it at or below the total partition count of the consumed topics."
  type        = number
  default     = 3
}

variable "ingest_cpu_target" {
  description = "Target tracking value: average CPU utilisation (%) of the ingest service."
  type        = number
  default     = 60

  validation {
    condition     = var.ingest_cpu_target > 0 && var.ingest_cpu_target <= 100
    error_message = "ingest_cpu_target must be a percentage between 1 and 100."
  }
}

# ---------------------------------------------------------------------------
# Kafka (ingest role)
# ---------------------------------------------------------------------------

variable "kafka_brokers" {
  description = "Kafka bootstrap brokers (host:port), e.g. the MSK bootstrap_brokers_sasl_scram list or Confluent Cloud's bootstrap server."
  type        = list(string)

  validation {
    condition     = length(var.kafka_brokers) > 0 && alltrue([for b in var.kafka_brokers : can(regex("^[^,\\s]+:[0-9]+$", b))])
    error_message = "kafka_brokers must be a non-empty list of host:port strings."
  }
}

variable "kafka_topics" {
  description = "Topics the ingest role consumes (KAFKA_TOPICS)."
  type        = list(string)
  default     = ["pc1", "pc2", "raspberry"]
}

variable "kafka_group_id" {
  description = "Consumer group id (KAFKA_GROUP_ID)."
  type        = string
  default     = "sensors-ingest"
}

variable "kafka_dlq_topic" {
  description = "Dead-letter topic for messages that cannot be stored (KAFKA_DLQ_TOPIC)."
  type        = string
  default     = "sensors.dlq"
}

variable "kafka_security_protocol" {
  description = "KAFKA_SECURITY_PROTOCOL: SASL_SSL for MSK SCRAM and Confluent Cloud; null for a plaintext cluster."
  type        = string
  default     = "SASL_SSL"

  validation {
    condition     = var.kafka_security_protocol == null || contains(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], upper(coalesce(var.kafka_security_protocol, "none")))
    error_message = "kafka_security_protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL or null."
  }
}

variable "kafka_sasl_mechanism" {
  description = "KAFKA_SASL_MECHANISM: SCRAM-SHA-512 (MSK), PLAIN (Confluent Cloud), SCRAM-SHA-256; null without SASL."
  type        = string
  default     = "SCRAM-SHA-512"

  validation {
    condition     = var.kafka_sasl_mechanism == null || contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], coalesce(var.kafka_sasl_mechanism, "none"))
    error_message = "kafka_sasl_mechanism must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or null."
  }
}

variable "kafka_sasl_username" {
  description = "KAFKA_SASL_USERNAME (not a secret: the Confluent API key id or the MSK SCRAM user name)."
  type        = string
  default     = null
}

variable "kafka_sasl_password_secret_arn" {
  description = <<-EOT
    Where KAFKA_SASL_PASSWORD comes from, injected through the task definition's `secrets`:
    a Secrets Manager secret ARN (optionally with a JSON key suffix, e.g. `arn:...:secret:kafka-AbCdEf:password::`)
    or an SSM Parameter Store SecureString ARN (`arn:...:ssm:<region>:<account>:parameter/sensors/kafka-password`).
    Only this secret is readable by the execution role.
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.kafka_sasl_password_secret_arn == null || can(regex("^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+|ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+)$", coalesce(var.kafka_sasl_password_secret_arn, "-")))
    error_message = "kafka_sasl_password_secret_arn must be a Secrets Manager secret ARN or an SSM parameter ARN."
  }
}

variable "secrets_kms_key_arn" {
  description = "Customer managed KMS key that encrypts the Kafka secret/parameter (null when it uses the AWS managed key). Grants kms:Decrypt on this key only."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Service settings
# ---------------------------------------------------------------------------

variable "log_level" {
  description = "LOG_LEVEL for both roles."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace", "silent"], var.log_level)
    error_message = "log_level must be one of fatal, error, warn, info, debug, trace, silent."
  }
}

variable "log_requests" {
  description = "LOG_REQUESTS for both roles: log every request (two lines each, at info). false keeps the service's own info logs and lets pollers' repeated requests be answered before routing; the cheaper choice at high polling rates."
  type        = bool
  default     = true
}

variable "stale_after_seconds" {
  description = "STALE_AFTER_SECONDS: a device with no reading for this long is reported stale (null: the service default)."
  type        = number
  default     = null
}

variable "retention_days" {
  description = "Keep readings this many days: sets RETENTION_DAYS (the service writes expires_at) and enables the table's TTL on expires_at. null keeps readings forever."
  type        = number
  default     = null

  validation {
    condition     = var.retention_days == null || coalesce(var.retention_days, 1) > 0
    error_message = "retention_days must be positive or null."
  }
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention for the service log group (days)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "container_insights" {
  description = "ECS Container Insights setting for the cluster: enabled, enhanced or disabled."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enabled", "enhanced", "disabled"], var.container_insights)
    error_message = "container_insights must be enabled, enhanced or disabled."
  }
}

# ---------------------------------------------------------------------------
# DynamoDB
# ---------------------------------------------------------------------------

variable "table_name" {
  description = "DynamoDB table name (DYNAMODB_TABLE)."
  type        = string
  default     = "sensors_data"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3-255 characters of letters, digits, _ . -"
  }
}

variable "dynamodb_kms_key_arn" {
  description = "Customer managed KMS key for the table's server-side encryption (null: the AWS managed key alias/aws/dynamodb)."
  type        = string
  default     = null
}

variable "table_deletion_protection" {
  description = "Protect the table from deletion (set false before `terraform destroy`)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "vpc_id" {
  description = "Existing VPC to use. null creates a minimal VPC (2 AZs, public subnets for the ALB, private subnets + NAT for the tasks)."
  type        = string
  default     = null
}

variable "public_subnet_ids" {
  description = "Public subnets for the ALB (required with vpc_id; at least two AZs)."
  type        = list(string)
  default     = null
}

variable "private_subnet_ids" {
  description = "Subnets for the tasks (required with vpc_id). They need a route to ECR, CloudWatch Logs, DynamoDB, Secrets Manager/SSM and the Kafka brokers (NAT or VPC endpoints)."
  type        = list(string)
  default     = null
}

variable "task_assign_public_ip" {
  description = "Give tasks a public IP (only with an existing VPC whose task subnets have no NAT). Ignored for the created VPC, where tasks never get one."
  type        = bool
  default     = false
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC (ignored with vpc_id)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "vpc_cidr must be an IPv4 CIDR of /20 or larger."
  }
}

variable "nat_gateway_per_az" {
  description = "Created VPC: one NAT gateway per AZ (survives an AZ outage, costs one NAT per AZ) instead of a single shared one."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------

variable "allowed_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the ALB on 80/443."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.allowed_ingress_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")])
    error_message = "allowed_ingress_cidrs must be IPv4 CIDRs."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener; HTTP only redirects to HTTPS. Required unless allow_plain_http = true."
  type        = string
  default     = null
}

variable "allow_plain_http" {
  description = "A test stack without a certificate: the API on plain HTTP port 80. Never for real data (keys would cross the internet in clear)."
  type        = bool
  default     = false
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "domain_name" {
  description = "DNS name that points at the ALB (matching certificate_arn); used for docs_url. null uses the ALB's own DNS name."
  type        = string
  default     = null
}

variable "alb_deletion_protection" {
  description = "Protect the ALB from deletion (set false, apply, then destroy to remove a stack)."
  type        = bool
  default     = true
}

variable "api_keys_secret_arn" {
  description = "Secrets Manager secret (or SSM SecureString) holding API_KEYS (name:key,name:key), injected by ECS into the tasks. null: the API is open."
  type        = string
  default     = null

  validation {
    condition     = var.api_keys_secret_arn == null || can(regex("^arn:[a-z-]+:(secretsmanager|ssm):", var.api_keys_secret_arn))
    error_message = "api_keys_secret_arn must be a Secrets Manager secret ARN or an SSM parameter ARN."
  }
}

variable "rate_limit_per_minute" {
  description = "RATE_LIMIT_PER_MINUTE of each api task (per key, or per client address); 0 = off; null = the service default (3000)."
  type        = number
  default     = null
}

variable "cors_origins" {
  description = "CORS_ORIGINS: origins (https://ops.example.com) allowed to call the API from a browser."
  type        = list(string)
  default     = []
}

variable "access_logs_retention_days" {
  description = "Days the ALB access logs are kept in their S3 bucket."
  type        = number
  default     = 90
}

variable "waf_rate_limit" {
  description = "With a value: an AWS WAF web ACL in front of the ALB blocking a client address over this many requests in 5 minutes (WAF's window). null: no WAF."
  type        = number
  default     = null
}

variable "deregistration_delay_seconds" {
  description = "Seconds the ALB drains a stopping api task before ECS sends it SIGTERM."
  type        = number
  default     = 20
}
