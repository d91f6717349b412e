# The service's table: readings per device (device + sk), the all-readings index (feed + sk) for
# time-ordered queries across devices, and the sparse fleet index (fleet + device) over the status
# items only, for GET /fleet (docs/adr/0005-fleet-access-path.md). Keep in sync with storage/table.ts.

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

  attribute {
    name = "fleet"
    type = "S"
  }

  # hash_key/range_key here work on AWS provider 5.x and 6.x (6.x also offers key_schema blocks).
  global_secondary_index {
    name            = "all-readings-index"
    hash_key        = "feed"
    range_key       = "sk"
    projection_type = "ALL"
  }

  # Status items only carry `fleet` (f0..f15, a hash of the device id): one item per device, in 16
  # shards read in parallel. Added to a table that exists: status items written before it gain
  # `fleet` at their device's next reading (or by the backfill in ADR 0005).
  global_secondary_index {
    name            = "fleet-index"
    hash_key        = "fleet"
    range_key       = "device"
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
