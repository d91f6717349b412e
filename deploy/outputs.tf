output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "service_url" {
  description = "Base URL of the API."
  value       = local.public_url
}

output "docs_url" {
  description = "Swagger UI."
  value       = "${local.public_url}/docs"
}

output "health_url" {
  description = "Health endpoint (200 healthy, 503 not)."
  value       = "${local.public_url}/health"
}

output "table_name" {
  description = "DynamoDB table."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "DynamoDB table ARN."
  value       = aws_dynamodb_table.this.arn
}

output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "api_service_name" {
  description = "ECS service of the api role."
  value       = aws_ecs_service.api.name
}

output "ingest_service_name" {
  description = "ECS service of the ingest role."
  value       = aws_ecs_service.ingest.name
}

output "log_group_name" {
  description = "CloudWatch log group of both roles (streams api/... and ingest/...)."
  value       = aws_cloudwatch_log_group.this.name
}

output "vpc_id" {
  description = "VPC the service runs in."
  value       = local.vpc_id
}

output "task_role_arn" {
  description = "IAM role the service code runs as."
  value       = aws_iam_role.task.arn
}
