# What invokes the functions: two timers on the collector, and the archiver's event route on the queue's
# <queue_prefix>pending/*.json objects (README.md, "Deployment").
#
# The event route depends on the site:
# - Chinese mainland site (cn-* regions): FunctionGraph offers no classic OBS trigger there (API reference,
#   CreateFunctionTrigger: "当前OBS触发器暂不支持中国站"); OBS events reach a function through an EventGrid
#   subscription only. archiver_trigger = "eventgrid" (the default).
# - International site (e.g. ap-southeast-1): either route; archiver_trigger = "obs" selects the classic trigger.

# docs/resources/fgs_function_trigger.md: `function_urn`, `type` (TIMER), `status`, `event_data` (JSON: name,
# schedule_type Rate|Cron, schedule, user_event — the page's timer examples).
resource "huaweicloud_fgs_function_trigger" "collect_daily" {
  function_urn = huaweicloud_fgs_function.collector.urn
  type         = "TIMER"
  status       = "ACTIVE"
  event_data   = jsonencode({
    name          = "redis-runlog-collect-daily"
    schedule_type = "Cron"
    schedule      = var.collect_schedule
    user_event    = jsonencode({ action = "collect" })
  })
}

# docs/resources/fgs_function_trigger.md (as above).
resource "huaweicloud_fgs_function_trigger" "sweep" {
  function_urn = huaweicloud_fgs_function.collector.urn
  type         = "TIMER"
  status       = "ACTIVE"
  event_data   = jsonencode({
    name          = "redis-runlog-sweep"
    schedule_type = "Rate"
    schedule      = var.sweep_rate
    user_event    = jsonencode({ action = "sweep" })
  })
}

# --- EventGrid (default; both sites) ---------------------------------------------------------------------------

# docs/data-sources/eg_event_channels.md: `provider_type` (OFFICIAL), `name`; exports `channels[].id`. The official
# channel "default" carries the cloud services' events (the provider's examples/fgs/triggers/eg/main.tf).
data "huaweicloud_eg_event_channels" "official" {
  count = var.archiver_trigger == "eventgrid" ? 1 : 0

  provider_type = "OFFICIAL"
  name          = "default"
}

# docs/resources/eg_event_subscription.md: `channel_id`, `name`, `description`, `sources { id (UUID), name,
# provider_type, detail_name, detail, filter_rule }`, `targets { id (UUID), name, provider_type, detail_name,
# detail, transform }`. The OBS source `HC.OBS.DWR` and the FunctionGraph target `HC.FunctionGraph` as in the
# page's first example. The source detail's `bucket`, `event_type`, `prefix`, `suffix` and `objectKeyEncode` keys are
# those of the provider's acceptance test (huaweicloud/services/acceptance/eg/
# resource_huaweicloud_eg_event_subscription_test.go, testAccEventSubscription_official_step2), which also takes
# the target's `urn` from the function's `id` (its URN with the version, here latest).
resource "huaweicloud_eg_event_subscription" "archiver" {
  count = var.archiver_trigger == "eventgrid" ? 1 : 0

  channel_id  = data.huaweicloud_eg_event_channels.official[0].channels[0].id
  name        = "redis-runlog-jobs-pending"
  description = "New archive jobs in the queue pending folder to the archiver"

  sources {
    # Custom ids "used to prevent ID change, in UUID format": derived, so they stay the same on every plan.
    id            = uuidv5("url", "redis-runlog-archiver/${local.queue_bucket}/source")
    name          = "HC.OBS.DWR"
    provider_type = "OFFICIAL"
    detail_name   = "detail"
    detail        = jsonencode({
      id         = uuidv5("url", "redis-runlog-archiver/${local.queue_bucket}/source")
      channel_id = data.huaweicloud_eg_event_channels.official[0].channels[0].id
      bucket     = local.queue_bucket
      event_type = [
        "ObjectCreated:PUT",
        "ObjectCreated:POST",
        "ObjectCreated:COPY",
        "ObjectCreated:CompleteMultipartUpload",
      ]
      # Only <queue_prefix>pending/*.json: retry/, done/ and failed/ must fire nothing.
      prefix = local.pending_prefix
      suffix = ".json"
      # Keys arrive URL-encoded (the archiver decodes them; shared/events.py).
      objectKeyEncode = true
    })
    filter_rule = jsonencode({
      source = [{ op = "StringIn", values = ["HC.OBS.DWR"] }]
      type   = [{
        op = "StringIn"
        values = [
          "OBS:DWR:ObjectCreated:PUT",
          "OBS:DWR:ObjectCreated:POST",
          "OBS:DWR:ObjectCreated:COPY",
          "OBS:DWR:ObjectCreated:CompleteMultipartUpload",
        ]
      }]
      data = { obs = { bucket = { name = [{ op = "StringIn", values = [local.queue_bucket] }] } } }
    })
  }

  targets {
    id            = uuidv5("url", "redis-runlog-archiver/${local.queue_bucket}/target")
    name          = "HC.FunctionGraph"
    provider_type = "OFFICIAL"
    detail_name   = "detail"
    detail        = jsonencode({
      urn         = huaweicloud_fgs_function.archiver.id
      invoke_type = "ASYNC"
      agency_name = var.eg_target_agency
    })
    # The CloudEvent as it is: the archiver reads data.obs (shared/events.py).
    transform = jsonencode({ type = "ORIGINAL", value = "" })
  }

  # The page warns that EG may return `detail` and `filter_rule` differently from what was sent and suggests
  # lifecycle.ignore_changes. The acceptance test above applies this same shape and expects an empty plan after
  # it, so nothing is ignored here: a changed prefix or function must reach the subscription. Should a plan keep
  # showing a diff on sources/targets, add `lifecycle { ignore_changes = [sources, targets] }`.
}

# --- the classic OBS trigger (international site only) ---------------------------------------------------------

# docs/resources/fgs_function_trigger.md: `type` OBS ("For more available values ... table 3" of
# CreateFunctionTrigger), `event_data` as FunctionGraph's OBS trigger takes it: bucket, events, name, prefix,
# suffix (the keys the provider's deprecated huaweicloud_fgs_trigger sends for its `obs` block,
# huaweicloud/services/deprecated/resource_huaweicloud_fgs_trigger.go buildObsEventData; events as
# "s3:ObjectCreated:*", docs/resources/fgs_trigger.md `obs.events` ObjectCreated).
resource "huaweicloud_fgs_function_trigger" "archiver_obs" {
  count = var.archiver_trigger == "obs" ? 1 : 0

  function_urn = huaweicloud_fgs_function.archiver.urn
  type         = "OBS"
  status       = "ACTIVE"
  event_data   = jsonencode({
    bucket = local.queue_bucket
    events = ["s3:ObjectCreated:*"]
    name   = "redis-runlog-jobs-pending"
    prefix = local.pending_prefix
    suffix = ".json"
  })

  lifecycle {
    precondition {
      condition     = !startswith(var.region, "cn-")
      error_message = "The Chinese mainland site (cn-* regions) has no classic OBS trigger: use archiver_trigger = \"eventgrid\" (the default)."
    }
  }
}
