# Optional AWS WAF in front of the ALB (waf_rate_limit set): a client address over that many
# requests in WAF's 5-minute window is blocked at the edge, before any task spends a cycle. The
# service's own RATE_LIMIT_PER_MINUTE still applies per key behind it.

resource "aws_wafv2_web_acl" "this" {
  #checkov:skip=CKV_AWS_192: the Log4j rule set (AWSManagedRulesKnownBadInputsRuleSet) protects Java services; this is Node.js
  #checkov:skip=CKV2_AWS_31: WAF logging needs a Firehose or log group of its own; the ALB access logs record every request already
  count = var.waf_rate_limit == null ? 0 : 1

  name  = "${var.name}-rate"
  scope = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "rate-per-ip"
    priority = 1

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-waf"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  count = var.waf_rate_limit == null ? 0 : 1

  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this[0].arn
}
