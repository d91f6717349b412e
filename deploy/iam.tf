locals {
  partition = data.aws_partition.current.partition

  # A Secrets Manager reference may carry a JSON key suffix (arn:...:secret:name-AbCdEf:password::);
  # IAM wants the secret's own ARN, its first seven colon-separated fields.
  kafka_secret_service = var.kafka_sasl_password_secret_arn == null ? null : split(":", var.kafka_sasl_password_secret_arn)[2]
  kafka_secret_resource = var.kafka_sasl_password_secret_arn == null ? null : ( #checkov:skip=CKV_SECRET_6: no secret, an expression (a false positive)
    local.kafka_secret_service == "secretsmanager"
    ? join(":", slice(split(":", var.kafka_sasl_password_secret_arn), 0, 7))
    : var.kafka_sasl_password_secret_arn
  )

  # The API_KEYS secret, the same way.
  api_keys_secret_service = var.api_keys_secret_arn == null ? null : split(":", var.api_keys_secret_arn)[2]
  api_keys_secret_resource = var.api_keys_secret_arn == null ? null : (
    local.api_keys_secret_service == "secretsmanager"
    ? join(":", slice(split(":", var.api_keys_secret_arn), 0, 7))
    : var.api_keys_secret_arn
  )
  execution_secrets = var.kafka_sasl_password_secret_arn != null || var.api_keys_secret_arn != null

  # The only DynamoDB actions the service uses (storage/, storage/readings-repository.ts).
  dynamodb_actions = [
    "dynamodb:DescribeTable",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
  ]
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# ---------------------------------------------------------------------------
# Execution role: used by ECS itself to pull the image, write logs and fetch the
# Kafka secret at task start. The AWS-managed policy covers ECR and Logs
# (ecr:GetAuthorizationToken can only be granted on "*", which that policy does).
# ---------------------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS execution role for ${var.name}: image pull, logs, Kafka secret"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution_managed" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  count = local.execution_secrets ? 1 : 0

  dynamic "statement" {
    for_each = local.kafka_secret_service == "secretsmanager" ? [1] : []
    content {
      sid       = "ReadKafkaSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.kafka_secret_resource]
    }
  }

  dynamic "statement" {
    for_each = local.kafka_secret_service == "ssm" ? [1] : []
    content {
      sid       = "ReadKafkaParameter"
      actions   = ["ssm:GetParameters"]
      resources = [local.kafka_secret_resource]
    }
  }

  dynamic "statement" {
    for_each = local.api_keys_secret_service == "secretsmanager" ? [1] : []
    content {
      sid       = "ReadApiKeysSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.api_keys_secret_resource]
    }
  }

  dynamic "statement" {
    for_each = local.api_keys_secret_service == "ssm" ? [1] : []
    content {
      sid       = "ReadApiKeysParameter"
      actions   = ["ssm:GetParameters"]
      resources = [local.api_keys_secret_resource]
    }
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [1]
    content {
      sid       = "DecryptKafkaSecret"
      actions   = ["kms:Decrypt"]
      resources = [var.secrets_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [for service in distinct(compact([local.kafka_secret_service, local.api_keys_secret_service])) : "${service}.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count = local.execution_secrets ? 1 : 0

  name   = "task-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

# ---------------------------------------------------------------------------
# Task role: what the service's own code may do (AWS SDK default credential chain).
# Exactly the five DynamoDB actions, on the table and its indexes, nothing else.
# ---------------------------------------------------------------------------

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "ECS task role for ${var.name}: the sensors table only"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task_dynamodb" {
  statement {
    sid       = "SensorsTable"
    actions   = local.dynamodb_actions
    resources = [aws_dynamodb_table.this.arn, "${aws_dynamodb_table.this.arn}/index/*"]
  }

  # Only with a customer managed table key: DynamoDB uses it on the caller's behalf.
  dynamic "statement" {
    for_each = var.dynamodb_kms_key_arn == null ? [] : [1]
    content {
      sid       = "SensorsTableKey"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey", "kms:CreateGrant"]
      resources = [var.dynamodb_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "task_dynamodb" {
  name   = "sensors-table"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_dynamodb.json
}
