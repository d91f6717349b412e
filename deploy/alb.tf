locals {
  https_enabled = var.certificate_arn != null
  public_host   = coalesce(var.domain_name, aws_lb.this.dns_name)
  public_url    = "${local.https_enabled ? "https" : "http"}://${local.public_host}"
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_76: the Log4j managed rules protect Java services; this is Node.js (and WAF is optional, waf_rate_limit)
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = local.public_subnet_ids

  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = 60

  access_logs {
    bucket  = aws_s3_bucket.access_logs.id
    prefix  = "alb"
    enabled = true
  }

  lifecycle {
    precondition {
      condition     = local.create_vpc || (length(local.public_subnet_ids) >= 2 && length(local.private_subnet_ids) >= 1)
      error_message = "With vpc_id set, give public_subnet_ids (at least two AZs) and private_subnet_ids."
    }
    precondition {
      condition     = var.certificate_arn != null || var.allow_plain_http
      error_message = "HTTPS by default: set certificate_arn (an ACM certificate), or allow_plain_http = true for a test stack."
    }
  }

  depends_on = [aws_s3_bucket_policy.access_logs]
}

# The api tasks register by IP (awsvpc networking); the ALB probes the same /health the
# container health check uses and wants exactly 200 (503 = unhealthy, e.g. DynamoDB down).
resource "aws_lb_target_group" "api" {
  #checkov:skip=CKV_AWS_378: TLS ends at the ALB; the tasks are in private subnets, reachable only from the ALB's security group
  name                 = "${var.name}-api"
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = local.container_port
  vpc_id               = local.vpc_id
  deregistration_delay = var.deregistration_delay_seconds

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/health"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

# With a certificate (the default): HTTP only answers a permanent redirect to HTTPS and the
# HTTPS listener forwards. Without one (allow_plain_http, a test stack): plain HTTP forwards.
resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2: port 80 only redirects to HTTPS unless allow_plain_http is set for a test stack
  #checkov:skip=CKV_AWS_103: the HTTP listener has no TLS; it redirects to the HTTPS listener, whose ssl_policy is TLS 1.2+
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https_enabled ? "redirect" : "forward"
    target_group_arn = local.https_enabled ? null : aws_lb_target_group.api.arn

    dynamic "redirect" {
      for_each = local.https_enabled ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

# /metrics is for Prometheus inside the VPC (scraping the tasks on port 3000), never for the
# internet: the listener that forwards answers it with a 404 before any task sees the request
# (deploy/README.md). The service also asks a key for it when API_KEYS is set.
resource "aws_lb_listener_rule" "block_metrics" {
  listener_arn = local.https_enabled ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn
  priority     = 10

  condition {
    path_pattern {
      values = ["/metrics", "/metrics/*"]
    }
  }

  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = jsonencode({ statusCode = 404, error = "Not Found", message = "Route GET /metrics not found" })
    }
  }
}
