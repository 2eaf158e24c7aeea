# The two functions, from the packages `make package` builds (tools/package.py): build/collector.zip and
# build/archiver.zip, each with index.py at its root (handler index.handler), the shared/ package and the
# runtime dependencies for CPython 3.10. A new package (its bytes change) updates the function's code.

# docs/resources/fgs_function.md: `name`, `app`, `agency`, `description`, `handler`, `runtime` (Python3.10 listed),
# `memory_size`, `timeout` (3-259,200 s), `code_type` (zip), `code_filename` (required for zip), `func_code`
# (Base64; required for zip), `user_data` (the environment variables, JSON).
resource "huaweicloud_fgs_function" "collector" {
  name          = var.collector_function_name
  app           = "default"
  agency        = huaweicloud_identity_agency.functions.name
  description   = "Collects the tagged DCS instances' Redis run logs and enqueues one archive job each"
  handler       = "index.handler"
  runtime       = "Python3.10"
  memory_size   = var.collector_memory_size
  timeout       = var.collector_timeout
  code_type     = "zip"
  code_filename = "collector.zip"
  func_code     = fileexists(local.collector_zip) ? filebase64(local.collector_zip) : null
  user_data     = jsonencode(local.environment)

  lifecycle {
    precondition {
      condition     = fileexists(local.collector_zip)
      error_message = "No collector.zip in the package directory: run `make package` at the repository's root first (or set package_dir)."
    }
    precondition {
      condition     = length(local.environment) <= 20 && length(jsonencode(local.environment)) <= 4096
      error_message = "FunctionGraph takes at most 20 environment variables (4 KB in all) per function: set fewer variables away from their defaults."
    }
    precondition {
      condition = !local.one_bucket || !(
        startswith(local.archive_prefix, local.queue_prefix) || startswith(local.queue_prefix, local.archive_prefix)
      )
      error_message = "queue_prefix must not overlap archive_prefix in one bucket (shared/config.py refuses it at start)."
    }
  }
}

# docs/resources/fgs_function.md (as above).
resource "huaweicloud_fgs_function" "archiver" {
  name          = var.archiver_function_name
  app           = "default"
  agency        = huaweicloud_identity_agency.functions.name
  description   = "Archives each pending job's DCS run-log files into the long-term OBS bucket"
  handler       = "index.handler"
  runtime       = "Python3.10"
  memory_size   = var.archiver_memory_size
  timeout       = var.archiver_timeout
  code_type     = "zip"
  code_filename = "archiver.zip"
  func_code     = fileexists(local.archiver_zip) ? filebase64(local.archiver_zip) : null
  user_data     = jsonencode(local.environment)

  lifecycle {
    precondition {
      condition     = fileexists(local.archiver_zip)
      error_message = "No archiver.zip in the package directory: run `make package` at the repository's root first (or set package_dir)."
    }
  }
}
