locals {
  package_dir   = var.package_dir != "" ? var.package_dir : "${path.module}/../../build"
  collector_zip = "${local.package_dir}/collector.zip"
  archiver_zip  = "${local.package_dir}/archiver.zip"

  # Prefixes as the code normalises them (shared/config.py `_prefix`): no leading "/", one trailing "/".
  archive_prefix = "${trimsuffix(trimprefix(var.archive_prefix, "/"), "/")}/"
  queue_prefix   = "${trimsuffix(trimprefix(var.queue_prefix, "/"), "/")}/"
  pending_prefix = "${local.queue_prefix}pending/"

  queue_bucket_name = var.queue_bucket != "" ? var.queue_bucket : var.archive_bucket
  one_bucket        = local.queue_bucket_name == var.archive_bucket

  # The buckets as the other resources see them: through the bucket resources when this stack creates them, so
  # the triggers and policies wait for the buckets.
  archive_bucket = var.create_buckets ? huaweicloud_obs_bucket.archive[0].bucket : var.archive_bucket
  queue_bucket = local.one_bucket ? local.archive_bucket : (
    var.create_buckets ? huaweicloud_obs_bucket.queue[0].bucket : local.queue_bucket_name
  )

  # Every environment variable shared/config.py reads, from its Terraform variable (same name, lower case;
  # DCS_REGION is `region`). Values are strings, as FunctionGraph passes them.
  settings = {
    DCS_REGION              = var.region
    DCS_ENDPOINT            = var.dcs_endpoint
    PROJECT_ID              = var.project_id
    INSTANCE_TAGS           = var.instance_tags
    QUERY_TIME              = tostring(var.query_time)
    QUERY_TIME_AUTO         = tostring(var.query_time_auto)
    REPLICAS                = var.replicas
    OBS_ENDPOINT            = var.obs_endpoint
    ARCHIVE_BUCKET          = var.archive_bucket
    ARCHIVE_PREFIX          = var.archive_prefix
    ARCHIVE_STORAGE_CLASS   = var.archive_storage_class
    ARCHIVE_COMPRESSION     = var.archive_compression
    QUEUE_BUCKET            = var.queue_bucket
    QUEUE_PREFIX            = var.queue_prefix
    LINK_HOST_SUFFIXES      = var.link_host_suffixes
    LINK_ALLOW_HTTP_HOSTS   = var.link_allow_http_hosts
    LOG_TIMEZONE            = var.log_timezone
    ARCHIVE_OPEN_DAY        = tostring(var.archive_open_day)
    OBS_PATH_STYLE          = tostring(var.obs_path_style)
    ARCHIVE_ENCRYPTION      = var.archive_encryption
    ARCHIVE_KMS_KEY_ID      = var.archive_kms_key_id
    COLLECT_CONCURRENCY     = tostring(var.collect_concurrency)
    COPY_CONCURRENCY        = tostring(var.copy_concurrency)
    API_MAX_RETRIES         = tostring(var.api_max_retries)
    API_RETRY_WAIT_SCALE    = tostring(var.api_retry_wait_scale)
    COLLECT_WAIT_SECONDS    = tostring(var.collect_wait_seconds)
    COLLECT_SETTLE_SECONDS  = tostring(var.collect_settle_seconds)
    COLLECT_POLL_SECONDS    = tostring(var.collect_poll_seconds)
    JOB_MAX_ATTEMPTS        = tostring(var.job_max_attempts)
    JOB_MAX_CONTINUATIONS   = tostring(var.job_max_continuations)
    JOB_RETRY_DELAY_SECONDS = tostring(var.job_retry_delay_seconds)
    PENDING_REDRIVE_SECONDS = tostring(var.pending_redrive_seconds)
    COPY_MAX_ATTEMPTS       = tostring(var.copy_max_attempts)
    PART_SIZE_MB            = tostring(var.part_size_mb)
    SINGLE_PUT_MAX_MB       = tostring(var.single_put_max_mb)
    GZIP_LEVEL              = tostring(var.gzip_level)
    DEADLINE_MARGIN_SECONDS = tostring(var.deadline_margin_seconds)
  }

  # Always written into the functions' environment, so the console shows what the functions work on.
  # (QUEUE_BUCKET too, below: the archive bucket's name when queue_bucket is empty.)
  always_set = [
    "DCS_REGION", "INSTANCE_TAGS", "ARCHIVE_BUCKET", "ARCHIVE_PREFIX", "ARCHIVE_STORAGE_CLASS", "ARCHIVE_COMPRESSION",
    "QUEUE_PREFIX", "LOG_TIMEZONE",
  ]

  # The code's defaults (the same values as the variables' defaults). A setting equal to its default is left out
  # of the environment: FunctionGraph takes at most 20 variables per function, fewer than the settings above.
  code_defaults = {
    DCS_ENDPOINT            = ""
    PROJECT_ID              = ""
    QUERY_TIME              = "1"
    QUERY_TIME_AUTO         = "true"
    REPLICAS                = "all"
    OBS_ENDPOINT            = ""
    QUEUE_BUCKET            = "" # the archive bucket; always written below, by name
    LINK_HOST_SUFFIXES      = ".myhuaweicloud.com"
    LINK_ALLOW_HTTP_HOSTS   = ""
    ARCHIVE_OPEN_DAY        = "false"
    OBS_PATH_STYLE          = "false"
    ARCHIVE_ENCRYPTION      = "none"
    ARCHIVE_KMS_KEY_ID      = ""
    COLLECT_CONCURRENCY     = "8"
    COPY_CONCURRENCY        = "4"
    API_MAX_RETRIES         = "5"
    API_RETRY_WAIT_SCALE    = "1"
    COLLECT_WAIT_SECONDS    = "600"
    COLLECT_SETTLE_SECONDS  = "60"
    COLLECT_POLL_SECONDS    = "2"
    JOB_MAX_ATTEMPTS        = "5"
    JOB_MAX_CONTINUATIONS   = "50"
    JOB_RETRY_DELAY_SECONDS = "1800"
    PENDING_REDRIVE_SECONDS = "7200"
    COPY_MAX_ATTEMPTS       = "3"
    PART_SIZE_MB            = "8"
    SINGLE_PUT_MAX_MB       = "16"
    GZIP_LEVEL              = "6"
    DEADLINE_MARGIN_SECONDS = "30"
  }

  # One environment for both functions: both validate the whole configuration at start (shared/config.py).
  environment = merge(
    {
      for name, value in local.settings : name => value
      if contains(local.always_set, name) || (value != "" && value != lookup(local.code_defaults, name, ""))
    },
    { QUEUE_BUCKET = local.queue_bucket_name },
  )

  # The role-based custom policy (IAM "Version 1.1"), from the same file the console route uses, with the
  # placeholders filled in. It is split by service: OBS is a global service (granted on the account), DCS a
  # regional one (granted in the region's project).
  role_policy = jsondecode(replace(replace(replace(replace(
    file("${path.module}/../agency-policy.json"),
    "<QUEUE_BUCKET>/redis-run-log-jobs/", "${local.queue_bucket_name}/${local.queue_prefix}"),
    "<ARCHIVE_BUCKET>/redis-run-logs/", "${var.archive_bucket}/${local.archive_prefix}"),
    "<QUEUE_BUCKET>", local.queue_bucket_name),
  "<ARCHIVE_BUCKET>", var.archive_bucket))
  role_statements_obs = [for s in local.role_policy.Statement : s if alltrue([for a in s.Action : startswith(a, "obs:")])]
  role_statements_dcs = [for s in local.role_policy.Statement : s if alltrue([for a in s.Action : startswith(a, "dcs:")])]

  # The identity-policy form (IAM "Version 5.0"), same placeholders.
  identity_policy = replace(replace(replace(replace(
    file("${path.module}/../identity-policy.json"),
    "<QUEUE_BUCKET>/redis-run-log-jobs/", "${local.queue_bucket_name}/${local.queue_prefix}"),
    "<ARCHIVE_BUCKET>/redis-run-logs/", "${var.archive_bucket}/${local.archive_prefix}"),
    "<QUEUE_BUCKET>", local.queue_bucket_name),
  "<ARCHIVE_BUCKET>", var.archive_bucket)

  iam_project = var.iam_project_name != "" ? var.iam_project_name : var.region

  # Lifecycle rule prefixes: the provider's docs say a rule prefix "cannot start or end with a slash"
  # (docs/resources/obs_bucket.md, lifecycle_rule.prefix), so the trailing "/" is dropped.
  archive_rule_prefix = trimsuffix(local.archive_prefix, "/")
  done_rule_prefix    = "${local.queue_prefix}done"
}
