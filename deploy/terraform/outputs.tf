# What was deployed, and what to check (README.md, "Checking a deployment").

output "collector_function_urn" {
  description = "The collector: test it once with the event in next_steps."
  value       = huaweicloud_fgs_function.collector.urn
}

output "archiver_function_urn" {
  description = "The archiver, invoked for every new <queue_prefix>pending/*.json object."
  value       = huaweicloud_fgs_function.archiver.urn
}

output "agency" {
  description = "The IAM agency both functions run with, and the custom policies granted to it."
  value = {
    name            = huaweicloud_identity_agency.functions.name
    obs_policy      = huaweicloud_identity_role.obs.name
    dcs_policy      = huaweicloud_identity_role.dcs.name
    dcs_project     = local.iam_project
    identity_policy = var.attach_identity_policy ? huaweicloud_identityv5_policy.functions[0].name : null
    kms_policy      = var.archive_encryption == "kms" ? huaweicloud_identity_role.kms[0].name : null
  }
}

output "archive_location" {
  description = "Where the archived run logs appear: <instance_id>/<day>/<group>/redis_<ip>_<day>.log.gz below it."
  value       = "obs://${local.archive_bucket}/${local.archive_prefix}"
}

output "queue_pending_location" {
  description = "Where the collector writes one job per instance; each new object must invoke the archiver."
  value       = "obs://${local.queue_bucket}/${local.pending_prefix}"
}

output "archiver_route" {
  description = "How the queue's events reach the archiver on this site."
  value = var.archiver_trigger == "eventgrid" ? {
    kind          = "EventGrid subscription (EventGrid console, Event Subscriptions)"
    id            = huaweicloud_eg_event_subscription.archiver[0].id
    status        = huaweicloud_eg_event_subscription.archiver[0].status
    target_agency = var.eg_target_agency
    } : {
    kind          = "classic OBS trigger (FunctionGraph console, the archiver's Triggers tab)"
    id            = huaweicloud_fgs_function_trigger.archiver_obs[0].id
    status        = "ACTIVE"
    target_agency = null
  }
}

output "function_environment" {
  description = "The environment both functions get (settings equal to the code's defaults are left out)."
  value       = local.environment
}

output "next_steps" {
  description = "What to check after the first apply."
  value = [
    "1. FunctionGraph console, ${var.collector_function_name}: test with {\"action\": \"collect\", \"instance_ids\": [\"<one tagged instance id>\"]}; its log ends with collector_summary (matched: 1, jobs_enqueued: 1).",
    "2. A job appears under obs://${local.queue_bucket}/${local.pending_prefix}; within a minute ${var.archiver_function_name} logs file_archived and archiver_summary with outcomes {\"done\": 1}.",
    "3. If the archiver never runs: ${var.archiver_trigger == "eventgrid" ? "check the EventGrid subscription redis-runlog-jobs-pending is enabled and the agency ${var.eg_target_agency} exists (EventGrid console, event tracing shows refused deliveries)" : "check the archiver's OBS trigger on bucket ${local.queue_bucket}"}.",
    "4. Files land under obs://${local.archive_bucket}/${local.archive_prefix}<instance_id>/<day>/ with sha256 and original-size metadata; a 403 DCS.2003/DCS.2007 in the logs means the agency lacks a grant (see attach_identity_policy).",
  ]
}
