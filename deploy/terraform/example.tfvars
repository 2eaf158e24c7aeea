# An example of the variables to set (terraform -chdir=deploy/terraform apply -var-file=example.tfvars).
# Copy it (e.g. to my.tfvars) and change the names: bucket names are global in OBS.

# --- Chinese mainland site: the archiver's events come through EventGrid (the only route there) ---
region           = "cn-north-4"
archiver_trigger = "eventgrid"

# --- International site: either route; the classic OBS trigger needs no EventGrid agency ---
# region           = "ap-southeast-1"
# archiver_trigger = "obs"

archive_bucket = "change-me-redis-run-log-archive"
instance_tags  = "redis-runlog-archive=true"

# Optional (the code's defaults otherwise; README.md, "Configuration"):
# queue_bucket          = ""              # "" = the archive bucket
# log_timezone          = "+08:00"
# archive_storage_class = "STANDARD"
# eg_target_agency      = "EG_TARGET_AGENCY"
# create_buckets        = true            # false: the buckets exist (run setup-buckets for their rules)
