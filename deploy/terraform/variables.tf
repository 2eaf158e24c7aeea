# Inputs. Two groups:
# - the functions' configuration: one variable per environment variable of README.md, "Configuration" (the names
#   shared/config.py reads), with the code's own default, so leaving a variable out changes nothing;
# - the deployment itself: site and event route, names, memory and timeouts, schedules, IAM, buckets.
# tests/unit/test_terraform.py checks that every variable shared/config.py reads is mapped here with the code's
# default.

# --- where -----------------------------------------------------------------------------------------------------

variable "region" {
  description = "Region of the DCS instances, the functions and the buckets (DCS_REGION), e.g. cn-north-4 (Chinese mainland site) or ap-southeast-1 (international site)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2,}(-[a-z0-9]+)+$", var.region))
    error_message = "The region must be a region id such as cn-north-4 or ap-southeast-1."
  }
}

variable "archiver_trigger" {
  description = "How the queue's ObjectCreated events reach the archiver: \"eventgrid\" (an EventGrid subscription; both sites, the only route on the Chinese mainland site) or \"obs\" (the classic OBS trigger; international site only)."
  type        = string
  default     = "eventgrid"

  validation {
    condition     = contains(["eventgrid", "obs"], var.archiver_trigger)
    error_message = "The archiver_trigger must be \"eventgrid\" or \"obs\"."
  }
}

variable "eg_target_agency" {
  description = "Agency EventGrid invokes the archiver with (the FunctionGraph target's agency_name). It must exist before apply; EventGrid's console proposes one when a FunctionGraph target is first set up."
  type        = string
  default     = "EG_TARGET_AGENCY"
}

# --- the functions' configuration (shared/config.py) -----------------------------------------------------------

variable "dcs_endpoint" {
  description = "DCS_ENDPOINT: DCS API endpoint override (private endpoints). Empty: derived from the region by the code."
  type        = string
  default     = ""
}

variable "project_id" {
  description = "PROJECT_ID: project id. Empty: the runtime's RUNTIME_PROJECT_ID."
  type        = string
  default     = ""
}

variable "instance_tags" {
  description = "INSTANCE_TAGS: key=value[,key=value...]; an instance must carry all of them to be archived."
  type        = string

  validation {
    condition     = alltrue([for item in split(",", var.instance_tags) : can(regex("^\\s*[^=,\\s][^=,]*=", item))])
    error_message = "The instance_tags must read key=value[,key=value...]."
  }
}

variable "query_time" {
  description = "QUERY_TIME: days of logs to collect at least (0, 1, 3 or 7)."
  type        = number
  default     = 1

  validation {
    condition     = contains([0, 1, 3, 7], var.query_time)
    error_message = "The query_time must be 0, 1, 3 or 7."
  }
}

variable "query_time_auto" {
  description = "QUERY_TIME_AUTO: widen the window per instance back to its first day not archived yet."
  type        = bool
  default     = true
}

variable "replicas" {
  description = "REPLICAS: collect \"all\" replicas or the \"master\"s only."
  type        = string
  default     = "all"

  validation {
    condition     = contains(["all", "master"], lower(var.replicas))
    error_message = "The replicas must be all or master."
  }
}

variable "obs_endpoint" {
  description = "OBS_ENDPOINT: OBS endpoint. Empty: derived from the region by the code."
  type        = string
  default     = ""
}

variable "archive_bucket" {
  description = "ARCHIVE_BUCKET: the long-term bucket (created here unless create_buckets = false)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.archive_bucket))
    error_message = "The archive_bucket must be a bucket name (3-63 of a-z 0-9 . -)."
  }
}

variable "archive_prefix" {
  description = "ARCHIVE_PREFIX: key prefix of the archive in its bucket."
  type        = string
  default     = "redis-run-logs/"

  validation {
    condition     = trim(var.archive_prefix, "/") != "" && !contains(split("/", var.archive_prefix), "..")
    error_message = "The archive_prefix must be a key prefix without '..' segments (an empty value means the code's default)."
  }
}

variable "archive_storage_class" {
  description = "ARCHIVE_STORAGE_CLASS: storage class of archived objects (STANDARD, WARM or COLD)."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "WARM", "COLD"], upper(var.archive_storage_class))
    error_message = "The archive_storage_class must be STANDARD, WARM or COLD."
  }
}

variable "archive_compression" {
  description = "ARCHIVE_COMPRESSION: gzip or none."
  type        = string
  default     = "gzip"

  validation {
    condition     = contains(["gzip", "none"], lower(var.archive_compression))
    error_message = "The archive_compression must be gzip or none."
  }
}

variable "queue_bucket" {
  description = "QUEUE_BUCKET: bucket of the job queue. Empty: the archive bucket (the code's default)."
  type        = string
  default     = ""

  validation {
    condition     = var.queue_bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.queue_bucket))
    error_message = "The queue_bucket must be empty or a bucket name (3-63 of a-z 0-9 . -)."
  }
}

variable "queue_prefix" {
  description = "QUEUE_PREFIX: key prefix of the job queue; the archiver's event route watches <queue_prefix>pending/."
  type        = string
  default     = "redis-run-log-jobs/"

  validation {
    condition     = trim(var.queue_prefix, "/") != "" && !contains(split("/", var.queue_prefix), "..")
    error_message = "The queue_prefix must be a key prefix without '..' segments (an empty value means the code's default)."
  }
}

variable "link_host_suffixes" {
  description = "LINK_HOST_SUFFIXES: hosts a download link may point at (comma-separated)."
  type        = string
  default     = ".myhuaweicloud.com"
}

variable "link_allow_http_hosts" {
  description = "LINK_ALLOW_HTTP_HOSTS: exact hosts whose links may be plain http (local cloud only; leave empty)."
  type        = string
  default     = ""
}

variable "log_timezone" {
  description = "LOG_TIMEZONE: UTC offset in which DCS names a log's day."
  type        = string
  default     = "+08:00"
}

variable "archive_open_day" {
  description = "ARCHIVE_OPEN_DAY: also archive the current day, marked partial, replaced later."
  type        = bool
  default     = false
}

variable "obs_path_style" {
  description = "OBS_PATH_STYLE: path-style addressing (S3-compatible stores only; leave false on Huawei Cloud)."
  type        = bool
  default     = false
}

variable "archive_encryption" {
  description = "ARCHIVE_ENCRYPTION: server-side encryption of every archived object and manifest: \"none\", \"obs\" (SSE-OBS, keys OBS manages) or \"kms\" (SSE-KMS with archive_kms_key_id; the agency gets the KMS grant of deploy/kms-agency-policy.json). With create_buckets, also the archive bucket's default encryption."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "obs", "kms"], var.archive_encryption)
    error_message = "The archive_encryption must be \"none\", \"obs\" or \"kms\"."
  }
}

variable "archive_kms_key_id" {
  description = "ARCHIVE_KMS_KEY_ID: the KMS key of SSE-KMS (its id, or regionID:domainID:key/key_id); required with archive_encryption = \"kms\", empty otherwise."
  type        = string
  default     = ""

  # Set exactly when archive_encryption is "kms": checked by a precondition in iam.tf (a variable's validation
  # may refer to another variable only from Terraform 1.9).
  validation {
    condition     = var.archive_kms_key_id == "" || can(regex("^[A-Za-z0-9][A-Za-z0-9:/._-]{0,254}$", var.archive_kms_key_id))
    error_message = "The archive_kms_key_id must be a KMS key id (key_id or regionID:domainID:key/key_id)."
  }
}

variable "collect_concurrency" {
  description = "COLLECT_CONCURRENCY: instances collected at once (1-64)."
  type        = number
  default     = 8
}

variable "copy_concurrency" {
  description = "COPY_CONCURRENCY: files of one job copied at once (1-16)."
  type        = number
  default     = 4
}

variable "api_max_retries" {
  description = "API_MAX_RETRIES: retries of a DCS call on throttling, 5xx, connection errors, DCS.4017 (0-10)."
  type        = number
  default     = 5
}

variable "api_retry_wait_scale" {
  description = "API_RETRY_WAIT_SCALE: multiplies every backoff wait of DCS retries (0.001-10)."
  type        = number
  default     = 1
}

variable "collect_wait_seconds" {
  description = "COLLECT_WAIT_SECONDS: longest wait for a collection to settle before the job is parked."
  type        = number
  default     = 600
}

variable "collect_settle_seconds" {
  description = "COLLECT_SETTLE_SECONDS: a listing must stay unchanged this long after the collection request."
  type        = number
  default     = 60
}

variable "collect_poll_seconds" {
  description = "COLLECT_POLL_SECONDS: first pause between ListRedislog polls while a collection settles (0.05-60)."
  type        = number
  default     = 2
}

variable "job_max_attempts" {
  description = "JOB_MAX_ATTEMPTS: archiver attempts before a job goes to failed/."
  type        = number
  default     = 5
}

variable "job_max_continuations" {
  description = "JOB_MAX_CONTINUATIONS: times a job that made progress is handed straight to a new invocation before it is parked in retry/."
  type        = number
  default     = 50
}

variable "job_retry_delay_seconds" {
  description = "JOB_RETRY_DELAY_SECONDS: first re-drive delay of a parked job (doubles each attempt)."
  type        = number
  default     = 1800
}

variable "pending_redrive_seconds" {
  description = "PENDING_REDRIVE_SECONDS: a pending job older than this is written again (its event was lost)."
  type        = number
  default     = 7200
}

variable "copy_max_attempts" {
  description = "COPY_MAX_ATTEMPTS: attempts per file, each with a fresh link."
  type        = number
  default     = 3
}

variable "part_size_mb" {
  description = "PART_SIZE_MB: multipart part size in MiB."
  type        = number
  default     = 8
}

variable "single_put_max_mb" {
  description = "SINGLE_PUT_MAX_MB: largest single PUT in MiB."
  type        = number
  default     = 16
}

variable "gzip_level" {
  description = "GZIP_LEVEL: 1-9."
  type        = number
  default     = 6
}

variable "deadline_margin_seconds" {
  description = "DEADLINE_MARGIN_SECONDS: stop starting new work this long before the function's timeout."
  type        = number
  default     = 30
}

# --- the functions ---------------------------------------------------------------------------------------------

variable "package_dir" {
  description = "Directory holding collector.zip and archiver.zip from `make package`. Empty: the repository's build/."
  type        = string
  default     = ""
}

variable "collector_function_name" {
  description = "Name of the collector function."
  type        = string
  default     = "redis-runlog-collector"
}

variable "archiver_function_name" {
  description = "Name of the archiver function."
  type        = string
  default     = "redis-runlog-archiver"
}

variable "collector_memory_size" {
  description = "Collector memory in MB (README, \"Memory and timeouts\")."
  type        = number
  default     = 256
}

variable "collector_timeout" {
  description = "Collector timeout in seconds."
  type        = number
  default     = 900
}

variable "archiver_memory_size" {
  description = "Archiver memory in MB (README, \"Memory and timeouts\")."
  type        = number
  default     = 512
}

variable "archiver_timeout" {
  description = "Archiver timeout in seconds."
  type        = number
  default     = 900
}

variable "collect_schedule" {
  description = "Daily collection, a FunctionGraph timer cron (seconds first): 01:30 every day by default."
  type        = string
  default     = "0 30 1 * * ?"
}

variable "sweep_rate" {
  description = "Rate of the sweep timer (re-drives parked and lost jobs), e.g. 30m."
  type        = string
  default     = "30m"
}

# --- IAM -------------------------------------------------------------------------------------------------------

variable "agency_name" {
  description = "Name of the IAM agency both functions run with (trusts FunctionGraph)."
  type        = string
  default     = "redis-runlog-archiver"
}

variable "iam_project_name" {
  description = "IAM project the DCS part of the policy is granted in. Empty: the region's default project (named like the region)."
  type        = string
  default     = ""
}

variable "attach_identity_policy" {
  description = "Also create the identity-policy form (deploy/identity-policy.json, IAM \"Version 5.0\") and attach it to the agency: for accounts where the role-based form does not grant the run-log calls."
  type        = bool
  default     = false
}

# --- buckets ---------------------------------------------------------------------------------------------------

variable "create_buckets" {
  description = "Create the archive and queue buckets with their lifecycle rules. false: they exist already (apply the rules with `python -m shared.cli setup-buckets`)."
  type        = bool
  default     = true
}

variable "warm_after_days" {
  description = "Archived logs move to WARM after this many days (0: never). As setup-buckets --warm-after-days."
  type        = number
  default     = 30
}

variable "cold_after_days" {
  description = "Archived logs move to COLD after this many days (0: never). As setup-buckets --cold-after-days."
  type        = number
  default     = 90
}

variable "expire_after_days" {
  description = "Archived logs are deleted after this many days (0: kept). As setup-buckets --expire-after-days."
  type        = number
  default     = 0
}

variable "archive_versioning" {
  description = "Versioning on the archive bucket. As setup-buckets --versioning."
  type        = bool
  default     = false
}

variable "done_expire_days" {
  description = "Finished job records (<queue_prefix>done/) are deleted after this many days (0: kept). As setup-buckets --done-expire-days."
  type        = number
  default     = 30
}

variable "abort_uploads_after_days" {
  description = "Incomplete multipart uploads in the archive are discarded after this many days (shared/buckets.py Retention)."
  type        = number
  default     = 7
}
