# The service's table: readings per device (device + sk), and the all-readings index
# (feed + sk) for time-ordered queries across devices. Keep in sync with storage/table.ts.

locals {
  ttl_enabled   = var.retention_days != null
  ttl_attribute = "expires_at"
}

resource "aws_dynamodb_table" "this" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "device"
  range_key                   = "sk"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "device"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "feed"
    type = "S"
  }

  # hash_key/range_key here work on AWS provider 5.x and 6.x (6.x also offers key_schema blocks).
  global_secondary_index {
    name            = "all-readings-index"
    hash_key        = "feed"
    range_key       = "sk"
    projection_type = "ALL"
  }

  # Readings carry expires_at (epoch seconds) when RETENTION_DAYS is set; DynamoDB deletes
  # them after that time at no cost. Off while var.retention_days is null.
  ttl {
    enabled        = local.ttl_enabled
    attribute_name = local.ttl_enabled ? local.ttl_attribute : null
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.dynamodb_kms_key_arn
  }
}
