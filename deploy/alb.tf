locals {
  https_enabled = var.certificate_arn != null
  public_host   = coalesce(var.domain_name, aws_lb.this.dns_name)
  public_url    = "${local.https_enabled ? "https" : "http"}://${local.public_host}"
}

resource "aws_lb" "this" {
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = local.public_subnet_ids

  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = 60

  lifecycle {
    precondition {
      condition     = local.create_vpc || (length(local.public_subnet_ids) >= 2 && length(local.private_subnet_ids) >= 1)
      error_message = "With vpc_id set, give public_subnet_ids (at least two AZs) and private_subnet_ids."
    }
  }
}

# The api tasks register by IP (awsvpc networking); the ALB probes the same /health the
# container health check uses and wants exactly 200 (503 = unhealthy, e.g. DynamoDB down).
resource "aws_lb_target_group" "api" {
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

# Without a certificate: plain HTTP forwards to the api. With one: HTTP answers a
# permanent redirect to HTTPS and the HTTPS listener forwards.
resource "aws_lb_listener" "http" {
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
