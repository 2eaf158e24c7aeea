# The archive and queue buckets with the lifecycle rules of `python -m shared.cli setup-buckets`
# (shared/buckets.py): archived logs move to WARM, then COLD, optionally expire, and incomplete multipart uploads
# are discarded; finished job records under <queue_prefix>done/ expire. With create_buckets = false the buckets
# must exist already (and setup-buckets applies the same rules).
#
# Neither bucket sets force_destroy: `terraform destroy` refuses to delete a bucket that still holds archives.
#
# WORM: the provider's bucket resource has no argument for object lock (docs/resources/obs_bucket.md), and OBS
# enables it only when a bucket is created. For a WORM archive, create the buckets with
# `python -m shared.cli setup-buckets --worm-days N` and set create_buckets = false (README.md, "WORM retention").

# docs/resources/obs_bucket.md: `bucket`, `acl`, `versioning`, `lifecycle_rule { name, enabled, prefix,
# transition { days, storage_class }, expiration { days }, abort_incomplete_multipart_upload { days } }`,
# `encryption`, `sse_algorithm` ("kms": SSE-KMS, "AES256": SSE-OBS), `kms_key_id`.
resource "huaweicloud_obs_bucket" "archive" {
  count = var.create_buckets ? 1 : 0

  bucket     = var.archive_bucket
  acl        = "private"
  versioning = var.archive_versioning

  # The bucket's default encryption, as setup-buckets --encryption (the archiver asks for it on every object too).
  encryption    = var.archive_encryption != "none"
  sse_algorithm = lookup({ kms = "kms", obs = "AES256" }, var.archive_encryption, null)
  kms_key_id    = var.archive_encryption == "kms" ? var.archive_kms_key_id : null

  lifecycle_rule {
    name    = "redis-run-log-archive"
    enabled = true
    prefix  = local.archive_rule_prefix

    dynamic "transition" {
      for_each = var.warm_after_days > 0 ? [var.warm_after_days] : []
      content {
        days          = transition.value
        storage_class = "WARM"
      }
    }

    dynamic "transition" {
      for_each = var.cold_after_days > 0 ? [var.cold_after_days] : []
      content {
        days          = transition.value
        storage_class = "COLD"
      }
    }

    dynamic "expiration" {
      for_each = var.expire_after_days > 0 ? [var.expire_after_days] : []
      content {
        days = expiration.value
      }
    }

    abort_incomplete_multipart_upload {
      days = var.abort_uploads_after_days
    }
  }

  # The queue's rule, when one bucket holds both.
  dynamic "lifecycle_rule" {
    for_each = local.one_bucket && var.done_expire_days > 0 ? [var.done_expire_days] : []
    content {
      name    = "redis-run-log-jobs-done"
      enabled = true
      prefix  = local.done_rule_prefix

      expiration {
        days = lifecycle_rule.value
      }
    }
  }

  lifecycle {
    # The same checks as shared/buckets.py check_retention.
    precondition {
      condition = alltrue([
        var.warm_after_days >= 0, var.cold_after_days >= 0, var.expire_after_days >= 0,
        var.warm_after_days == 0 || var.cold_after_days == 0 || var.cold_after_days > var.warm_after_days,
        var.expire_after_days == 0 || var.expire_after_days > max(var.warm_after_days, var.cold_after_days),
      ])
      error_message = "Lifecycle: each step must come later than the one before (warm < cold < expire, 0 = never)."
    }
    # OBS refuses two rules of one bucket whose prefixes contain one another (docs/resources/obs_bucket.md).
    precondition {
      condition = !local.one_bucket || var.done_expire_days == 0 || !(
        startswith(local.done_rule_prefix, local.archive_rule_prefix) ||
        startswith(local.archive_rule_prefix, local.done_rule_prefix)
      )
      error_message = "archive_prefix and queue_prefix overlap as lifecycle rule prefixes in one bucket: choose prefixes that do not begin with one another."
    }
  }
}

# docs/resources/obs_bucket.md (as above).
resource "huaweicloud_obs_bucket" "queue" {
  count = var.create_buckets && !local.one_bucket ? 1 : 0

  bucket = local.queue_bucket_name
  acl    = "private"

  dynamic "lifecycle_rule" {
    for_each = var.done_expire_days > 0 ? [var.done_expire_days] : []
    content {
      name    = "redis-run-log-jobs-done"
      enabled = true
      prefix  = local.done_rule_prefix

      expiration {
        days = lifecycle_rule.value
      }
    }
  }
}
