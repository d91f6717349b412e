terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }

  # State is local by default. For a team, add a backend here (S3 with a lock), e.g.:
  # backend "s3" {
  #   bucket       = "my-tf-state"
  #   key          = "sensors-api/terraform.tfstate"
  #   use_lockfile = true
  # }
  # (the backend's region comes from -backend-config or AWS_REGION, never a literal here)
}

# The region is always the caller's choice: var.region, no default anywhere.
provider "aws" {
  region = var.region

  default_tags {
    tags = merge(
      {
        Project   = var.name
        ManagedBy = "terraform"
        Source    = "sensors-api/deploy"
      },
      var.tags,
    )
  }
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}
