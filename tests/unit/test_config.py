"""load_config: every variable's default, and one clear message naming the variable for every bad value."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from shared.config import Config, ConfigError, load_config, parse_tags, parse_timezone

PROJECT = "0123456789abcdef0123456789abcdef"
BASE = {
    "DCS_REGION": "cn-north-4",
    "PROJECT_ID": PROJECT,
    "INSTANCE_TAGS": "archive-logs=true",
    "ARCHIVE_BUCKET": "redislog-archive",
}


def env(**changes: str | None) -> dict:
    out = dict(BASE)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def error_of(environment: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(environment, **kwargs)
    return str(info.value)


# --- defaults ---------------------------------------------------------------------------------------

def test_minimal_environment_gives_every_documented_default():
    cfg = load_config(dict(BASE))
    assert isinstance(cfg, Config)
    assert cfg.region == "cn-north-4"
    assert cfg.dcs_endpoint == "https://dcs.cn-north-4.myhuaweicloud.com"
    assert cfg.project_id == PROJECT
    assert cfg.instance_tags == (("archive-logs", "true"),)
    assert cfg.query_time == 1
    assert cfg.replicas == "all"
    assert cfg.obs_endpoint == "https://obs.cn-north-4.myhuaweicloud.com"
    assert cfg.archive_bucket == "redislog-archive"
    assert cfg.archive_prefix == "redis-run-logs/"
    assert cfg.archive_storage_class == "STANDARD"
    assert cfg.archive_compression == "gzip"
    assert cfg.queue_bucket == "redislog-archive"
    assert cfg.queue_prefix == "redis-run-log-jobs/"
    assert cfg.link_host_suffixes == (".myhuaweicloud.com",)
    assert cfg.link_allow_http_hosts == ()
    assert cfg.log_timezone == timezone(timedelta(hours=8))
    assert cfg.archive_open_day is False
    assert cfg.obs_path_style is False


def test_tuning_knobs_have_working_defaults():
    cfg = load_config(dict(BASE))
    assert cfg.collect_concurrency == 8
    assert cfg.copy_concurrency == 4
    assert cfg.api_max_retries == 5
    assert cfg.collect_wait_seconds == 600
    assert cfg.collect_settle_seconds == 60
    assert cfg.job_max_attempts == 5
    assert cfg.job_retry_delay_seconds == 1800
    assert cfg.pending_redrive_seconds == 7200
    assert cfg.copy_max_attempts == 3
    assert cfg.part_size == 8 * 2**20
    assert cfg.single_put_max == 16 * 2**20
    assert cfg.gzip_level == 6
    assert cfg.deadline_margin_seconds == 30


def test_empty_and_blank_values_count_as_unset():
    cfg = load_config(env(QUERY_TIME="", REPLICAS="   ", ARCHIVE_PREFIX="", LOG_TIMEZONE=" "))
    assert cfg.query_time == 1
    assert cfg.replicas == "all"
    assert cfg.archive_prefix == "redis-run-logs/"
    assert cfg.log_timezone == timezone(timedelta(hours=8))


def test_values_are_stripped_of_surrounding_whitespace():
    cfg = load_config(env(QUERY_TIME=" 7 ", ARCHIVE_BUCKET=" redislog-archive "))
    assert cfg.query_time == 7
    assert cfg.archive_bucket == "redislog-archive"


def test_every_variable_can_be_set():
    cfg = load_config(env(
        DCS_ENDPOINT="https://dcs.internal.example:8443/",
        QUERY_TIME="3", REPLICAS="MASTER", OBS_ENDPOINT="http://127.0.0.1:8333",
        ARCHIVE_PREFIX="/logs/redis", ARCHIVE_STORAGE_CLASS="cold", ARCHIVE_COMPRESSION="NONE",
        QUEUE_BUCKET="redislog-jobs", QUEUE_PREFIX="jobs", LINK_HOST_SUFFIXES=".Example.COM, .other.net",
        LINK_ALLOW_HTTP_HOSTS="127.0.0.1", LOG_TIMEZONE="-05:30", ARCHIVE_OPEN_DAY="yes", OBS_PATH_STYLE="on",
        COLLECT_CONCURRENCY="64", COPY_CONCURRENCY="1", API_MAX_RETRIES="0", COLLECT_WAIT_SECONDS="0",
        COLLECT_SETTLE_SECONDS="3600", JOB_MAX_ATTEMPTS="100", JOB_RETRY_DELAY_SECONDS="0",
        PENDING_REDRIVE_SECONDS="60", COPY_MAX_ATTEMPTS="10", PART_SIZE_MB="5", SINGLE_PUT_MAX_MB="1",
        GZIP_LEVEL="9", DEADLINE_MARGIN_SECONDS="600",
    ))
    assert cfg.dcs_endpoint == "https://dcs.internal.example:8443"
    assert cfg.query_time == 3
    assert cfg.replicas == "master"
    assert cfg.obs_endpoint == "http://127.0.0.1:8333"
    assert cfg.archive_prefix == "logs/redis/"
    assert cfg.archive_storage_class == "COLD"
    assert cfg.archive_compression == "none"
    assert cfg.queue_bucket == "redislog-jobs"
    assert cfg.queue_prefix == "jobs/"
    assert cfg.link_host_suffixes == (".example.com", ".other.net")
    assert cfg.link_allow_http_hosts == ("127.0.0.1",)
    assert cfg.log_timezone == timezone(-timedelta(hours=5, minutes=30))
    assert cfg.archive_open_day is True
    assert cfg.obs_path_style is True
    assert (cfg.collect_concurrency, cfg.copy_concurrency, cfg.api_max_retries) == (64, 1, 0)
    assert (cfg.collect_wait_seconds, cfg.collect_settle_seconds) == (0, 3600)
    assert (cfg.job_max_attempts, cfg.job_retry_delay_seconds, cfg.pending_redrive_seconds) == (100, 0, 60)
    assert cfg.copy_max_attempts == 10
    assert cfg.part_size == 5 * 2**20
    assert cfg.single_put_max == 1 * 2**20
    assert cfg.gzip_level == 9
    assert cfg.deadline_margin_seconds == 600


@pytest.mark.parametrize("value", ["0", "1", "3", "7"])
def test_query_time_accepts_the_four_documented_values(value):
    assert load_config(env(QUERY_TIME=value)).query_time == int(value)


def test_tags_filter_joins_pairs_for_list_instances():
    cfg = load_config(env(INSTANCE_TAGS="env=prod, team = dba"))
    assert cfg.instance_tags == (("env", "prod"), ("team", "dba"))
    assert cfg.tags_filter == "env=prod,team=dba"


# --- validation messages ------------------------------------------------------------------------------

def test_query_time_outside_the_choices_names_variable_and_choices():
    assert error_of(env(QUERY_TIME="2")) == "QUERY_TIME=2: must be one of 0, 1, 3, 7"


@pytest.mark.parametrize("name, value, form", [
    ("QUERY_TIME", "abc", "one of 0, 1, 3, 7"),
    ("QUERY_TIME", "14", "one of 0, 1, 3, 7"),
    ("REPLICAS", "slave", "all or master"),
    ("ARCHIVE_STORAGE_CLASS", "GLACIER", "STANDARD, WARM or COLD"),
    ("ARCHIVE_COMPRESSION", "zstd", "gzip or none"),
    ("ARCHIVE_OPEN_DAY", "maybe", "true or false"),
    ("OBS_PATH_STYLE", "2", "true or false"),
    ("LOG_TIMEZONE", "Asia/Shanghai", "a UTC offset such as +08:00"),
    ("LOG_TIMEZONE", "+15:00", "a UTC offset such as +08:00"),
    ("LOG_TIMEZONE", "+08:60", "a UTC offset such as +08:00"),
    ("LOG_TIMEZONE", "8", "a UTC offset such as +08:00"),
    ("DCS_ENDPOINT", "https://dcs.example.com/v2", "an http(s) URL without a path"),
    ("DCS_ENDPOINT", "ftp://dcs.example.com", "an http(s) URL without a path"),
    ("OBS_ENDPOINT", "obs.cn-north-4.myhuaweicloud.com", "an http(s) URL without a path"),
    ("ARCHIVE_BUCKET", "Bad_Bucket", "a bucket name (3-63 of a-z 0-9 . -)"),
    ("ARCHIVE_BUCKET", "ab", "a bucket name (3-63 of a-z 0-9 . -)"),
    ("ARCHIVE_BUCKET", "a..b", "a bucket name (3-63 of a-z 0-9 . -)"),
    ("ARCHIVE_BUCKET", "x" * 64, "a bucket name (3-63 of a-z 0-9 . -)"),
    ("QUEUE_BUCKET", "-jobs", "a bucket name (3-63 of a-z 0-9 . -)"),
    ("ARCHIVE_PREFIX", "logs/../other", "a key prefix"),
    ("QUEUE_PREFIX", "../jobs", "a key prefix"),
    ("INSTANCE_TAGS", "noequals", "key=value[,key=value...]"),
    ("INSTANCE_TAGS", "=value", "key=value[,key=value...]"),
    ("INSTANCE_TAGS", "a=1,", "key=value[,key=value...]"),
    ("INSTANCE_TAGS", "a=1,a=2", "key=value[,key=value...]"),
    ("LINK_HOST_SUFFIXES", ",,", "a comma-separated list of host suffixes"),
    ("LINK_ALLOW_HTTP_HOSTS", ",", "a comma-separated list of exact host names"),
    ("COLLECT_CONCURRENCY", "0", "an integer 1-64"),
    ("COLLECT_CONCURRENCY", "65", "an integer 1-64"),
    ("COPY_CONCURRENCY", "17", "an integer 1-16"),
    ("API_MAX_RETRIES", "-1", "an integer 0-10"),
    ("COLLECT_WAIT_SECONDS", "86401", "an integer 0-86400"),
    ("COLLECT_SETTLE_SECONDS", "ten", "an integer 0-3600"),
    ("JOB_MAX_ATTEMPTS", "0", "an integer 1-100"),
    ("JOB_RETRY_DELAY_SECONDS", "604801", "an integer 0-604800"),
    ("PENDING_REDRIVE_SECONDS", "59", "an integer 60-604800"),
    ("COPY_MAX_ATTEMPTS", "11", "an integer 1-10"),
    ("PART_SIZE_MB", "4", "an integer 5-1024 (MiB)"),
    ("SINGLE_PUT_MAX_MB", "0", "an integer 1-1024 (MiB)"),
    ("GZIP_LEVEL", "10", "an integer 1-9"),
    ("DEADLINE_MARGIN_SECONDS", "1.5", "an integer 0-600"),
])
def test_bad_value_message_names_variable_value_and_expected_form(name, value, form):
    message = error_of(env(**{name: value}))
    assert message.startswith(f"{name}={value}: must be {form}")


def test_tag_given_twice_says_which_key():
    assert "'a' given twice" in error_of(env(INSTANCE_TAGS="a=1, a=2"))


def test_bad_tag_pair_is_quoted_in_the_message():
    assert "bad pair 'oops'" in error_of(env(INSTANCE_TAGS="env=prod,oops"))


def test_missing_instance_tags_is_required_for_the_collector():
    assert error_of(env(INSTANCE_TAGS=None)) == "INSTANCE_TAGS: required, as key=value[,key=value...]"


def test_blank_instance_tags_is_as_missing():
    assert error_of(env(INSTANCE_TAGS="  ")).startswith("INSTANCE_TAGS: required")


def test_archiver_needs_no_instance_tags():
    assert load_config(env(INSTANCE_TAGS=None), needs_tags=False).instance_tags == ()


def test_archiver_still_refuses_malformed_instance_tags():
    assert error_of(env(INSTANCE_TAGS="broken"), needs_tags=False).startswith("INSTANCE_TAGS=broken")


def test_missing_archive_bucket_is_required():
    assert error_of(env(ARCHIVE_BUCKET=None)).startswith("ARCHIVE_BUCKET: required")


def test_missing_region_and_endpoint_names_dcs_region():
    message = error_of(env(DCS_REGION=None))
    assert message.startswith("DCS_REGION: required")
    assert "DCS_ENDPOINT" in message


def test_malformed_region_is_refused():
    assert error_of(env(DCS_REGION="CN_NORTH_4")) == "DCS_REGION=CN_NORTH_4: must be a region id such as cn-north-4"


def test_dcs_endpoint_without_region_needs_an_obs_endpoint():
    message = error_of(env(DCS_REGION=None, DCS_ENDPOINT="http://127.0.0.1:9000"))
    assert message.startswith("OBS_ENDPOINT: required")
    assert "DCS_REGION" in message


def test_dcs_endpoint_without_region_works_with_both_endpoints():
    cfg = load_config(env(DCS_REGION=None, DCS_ENDPOINT="http://127.0.0.1:9000/",
                          OBS_ENDPOINT="http://127.0.0.1:8333"))
    assert cfg.region == ""
    assert cfg.dcs_endpoint == "http://127.0.0.1:9000"
    assert cfg.obs_endpoint == "http://127.0.0.1:8333"


def test_dcs_endpoint_overrides_the_region_default():
    cfg = load_config(env(DCS_ENDPOINT="https://dcs.private.example"))
    assert cfg.dcs_endpoint == "https://dcs.private.example"
    assert cfg.obs_endpoint == "https://obs.cn-north-4.myhuaweicloud.com"


@pytest.mark.parametrize("region", ["cn-north-4", "ap-southeast-3", "af-south-1", "la-south-2", "eu-west-101"])
def test_default_dcs_endpoint_comes_from_the_dcs_sdk_region_table(region):
    from huaweicloudsdkdcs.v2.region.dcs_region import DcsRegion

    assert load_config(env(DCS_REGION=region)).dcs_endpoint == DcsRegion.static_fields[region].endpoints[0]


def test_eu_west_101_uses_its_own_obs_domain_and_links_are_expected_there():
    cfg = load_config(env(DCS_REGION="eu-west-101"))
    assert cfg.obs_endpoint == "https://obs.eu-west-101.myhuaweicloud.eu"
    assert cfg.link_host_suffixes == (".myhuaweicloud.eu",)


def test_default_link_host_suffix_follows_the_obs_endpoint_domain():
    assert load_config(env(OBS_ENDPOINT="https://obs.cn-north-4.myhuaweicloud.com")).link_host_suffixes == \
        (".myhuaweicloud.com",)
    assert load_config(env(OBS_ENDPOINT="https://obs.eu-west-101.myhuaweicloud.eu")).link_host_suffixes == \
        (".myhuaweicloud.eu",)
    # an address or a name of another form says nothing about the domain: the default domain
    assert load_config(env(OBS_ENDPOINT="http://127.0.0.1:8333")).link_host_suffixes == (".myhuaweicloud.com",)
    # set explicitly, it wins
    assert load_config(env(DCS_REGION="eu-west-101", LINK_HOST_SUFFIXES=".example.net")).link_host_suffixes == \
        (".example.net",)


def test_unknown_region_without_dcs_endpoint_names_dcs_endpoint():
    message = error_of(env(DCS_REGION="xx-moon-1"))
    assert message.startswith("DCS_ENDPOINT: required") and "xx-moon-1" in message


def test_unknown_region_without_obs_endpoint_names_obs_endpoint():
    message = error_of(env(DCS_REGION="xx-moon-1", DCS_ENDPOINT="https://dcs.xx-moon-1.example.com"))
    assert message.startswith("OBS_ENDPOINT: required") and "xx-moon-1" in message


def test_a_region_the_obs_table_lacks_needs_only_obs_endpoint():
    # eu-west-0 is in the DCS SDK's table but not in the OBS table this project carries
    assert "OBS_ENDPOINT" in error_of(env(DCS_REGION="eu-west-0"))
    cfg = load_config(env(DCS_REGION="eu-west-0", OBS_ENDPOINT="https://obs.eu-west-0.myhuaweicloud.com"))
    assert cfg.dcs_endpoint == "https://dcs.eu-west-0.myhuaweicloud.com"


def test_unknown_region_works_with_both_endpoints_set():
    cfg = load_config(env(DCS_REGION="xx-moon-1", DCS_ENDPOINT="https://dcs.xx-moon-1.example.com",
                          OBS_ENDPOINT="https://obs.xx-moon-1.example.com"))
    assert cfg.region == "xx-moon-1" and cfg.link_host_suffixes == (".example.com",)


# --- project id -----------------------------------------------------------------------------------------

def test_project_id_falls_back_to_runtime_project_id():
    cfg = load_config(env(PROJECT_ID=None, RUNTIME_PROJECT_ID="runtime-project-0001",
                          HUAWEICLOUD_SDK_PROJECT_ID="sdk-project-00000001"))
    assert cfg.project_id == "runtime-project-0001"


def test_project_id_falls_back_to_sdk_project_id_last():
    cfg = load_config(env(PROJECT_ID=None, HUAWEICLOUD_SDK_PROJECT_ID="sdk-project-00000001"))
    assert cfg.project_id == "sdk-project-00000001"


def test_project_id_wins_over_both_fallbacks():
    cfg = load_config(env(RUNTIME_PROJECT_ID="runtime-project-0001", HUAWEICLOUD_SDK_PROJECT_ID="sdk-project-01"))
    assert cfg.project_id == PROJECT


def test_blank_project_id_uses_the_fallback():
    cfg = load_config(env(PROJECT_ID=" ", RUNTIME_PROJECT_ID="runtime-project-0001"))
    assert cfg.project_id == "runtime-project-0001"


def test_missing_project_id_names_all_three_variables():
    message = error_of(env(PROJECT_ID=None))
    assert message.startswith("PROJECT_ID: required")
    assert "RUNTIME_PROJECT_ID" in message and "HUAWEICLOUD_SDK_PROJECT_ID" in message


@pytest.mark.parametrize("value", ["short", "has space in it", "a/b/c/d/e/f", "x" * 65])
def test_malformed_project_id_is_refused(value):
    assert error_of(env(PROJECT_ID=value)).startswith("PROJECT_ID=")


# --- prefixes and buckets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, prefix", [
    ("logs", "logs/"), ("logs/", "logs/"), ("/logs", "logs/"), ("//a/b", "a/b/"), ("a.b/c..d", "a.b/c..d/"),
])
def test_archive_prefix_is_normalised_to_end_in_one_slash(raw, prefix):
    assert load_config(env(ARCHIVE_PREFIX=raw)).archive_prefix == prefix


def test_prefix_error_explains_the_dot_dot_segment():
    assert "no '..' segments" in error_of(env(ARCHIVE_PREFIX="a/../b"))


@pytest.mark.parametrize("archive, queue", [
    ("logs/", "logs/"),
    ("logs/", "logs/jobs/"),
    ("logs/jobs/", "logs/"),
    ("/", "jobs/"),
])
def test_queue_prefix_overlapping_archive_prefix_in_one_bucket_is_refused(archive, queue):
    message = error_of(env(ARCHIVE_PREFIX=archive, QUEUE_PREFIX=queue))
    assert message.startswith("QUEUE_PREFIX=")
    assert "ARCHIVE_PREFIX=" in message and "overlap" in message


def test_overlapping_prefixes_are_fine_in_different_buckets():
    cfg = load_config(env(ARCHIVE_PREFIX="logs/", QUEUE_PREFIX="logs/jobs/", QUEUE_BUCKET="other-bucket"))
    assert (cfg.archive_prefix, cfg.queue_prefix, cfg.queue_bucket) == ("logs/", "logs/jobs/", "other-bucket")


def test_sibling_prefixes_sharing_a_stem_do_not_overlap():
    cfg = load_config(env(ARCHIVE_PREFIX="logs", QUEUE_PREFIX="logs-jobs"))
    assert (cfg.archive_prefix, cfg.queue_prefix) == ("logs/", "logs-jobs/")


def test_queue_bucket_defaults_to_archive_bucket():
    cfg = load_config(env(ARCHIVE_BUCKET="my.archive-1"))
    assert cfg.queue_bucket == "my.archive-1"


# --- the parsers themselves -----------------------------------------------------------------------------

def test_parse_tags_keeps_order_and_strips_spaces():
    assert parse_tags(" b = 2 ,a=1") == (("b", "2"), ("a", "1"))


def test_parse_tags_accepts_an_empty_value():
    assert parse_tags("flag=") == (("flag", ""),)


@pytest.mark.parametrize("raw", ["", "a", "=1", "a=1,,b=2", "a=1,a=1"])
def test_parse_tags_refuses_malformed_lists(raw):
    with pytest.raises(ValueError):
        parse_tags(raw)


@pytest.mark.parametrize("raw, offset", [
    ("+08:00", timedelta(hours=8)),
    ("+0800", timedelta(hours=8)),
    ("UTC+08:00", timedelta(hours=8)),
    ("utc+05:45", timedelta(hours=5, minutes=45)),
    ("-05:30", -timedelta(hours=5, minutes=30)),
    ("+14:00", timedelta(hours=14)),
    ("-12:00", -timedelta(hours=12)),
    ("+00:00", timedelta(0)),
    ("Z", timedelta(0)),
    ("z", timedelta(0)),
    ("UTC", timedelta(0)),
])
def test_parse_timezone_reads_utc_offsets(raw, offset):
    assert parse_timezone(raw).utcoffset(None) == offset


@pytest.mark.parametrize("raw", ["+8", "08:00", "+14:01", "+15:00", "+08:75", "CST", "Asia/Shanghai", "+08:00:00"])
def test_parse_timezone_refuses_anything_else(raw):
    with pytest.raises(ValueError):
        parse_timezone(raw)


@pytest.mark.parametrize("raw, value", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False),
])
def test_archive_open_day_reads_the_usual_booleans(raw, value):
    assert load_config(env(ARCHIVE_OPEN_DAY=raw)).archive_open_day is value


def test_first_bad_variable_is_reported_even_when_several_are_bad():
    # region is checked before the rest: one message, one variable
    message = error_of(env(DCS_REGION="BAD", QUERY_TIME="2"))
    assert message.startswith("DCS_REGION=BAD")
    assert "QUERY_TIME" not in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- server-side encryption ------------------------------------------------------------------------------

def test_encryption_defaults_to_none_without_a_key():
    cfg = load_config(dict(BASE))
    assert (cfg.archive_encryption, cfg.archive_kms_key_id) == ("none", "")


@pytest.mark.parametrize("changes, expected", [
    ({"ARCHIVE_ENCRYPTION": "obs"}, ("obs", "")),
    ({"ARCHIVE_ENCRYPTION": "OBS"}, ("obs", "")),
    ({"ARCHIVE_ENCRYPTION": "none"}, ("none", "")),
    ({"ARCHIVE_ENCRYPTION": "kms", "ARCHIVE_KMS_KEY_ID": "0d0466b0-e727-4d9c-b35d-f84bb474a37f"},
     ("kms", "0d0466b0-e727-4d9c-b35d-f84bb474a37f")),
    ({"ARCHIVE_ENCRYPTION": "kms", "ARCHIVE_KMS_KEY_ID": "cn-north-4:0123abcd:key/0d0466b0-e727"},
     ("kms", "cn-north-4:0123abcd:key/0d0466b0-e727")),
])
def test_encryption_modes_and_kms_key_forms_are_read(changes, expected):
    cfg = load_config(env(**changes))
    assert (cfg.archive_encryption, cfg.archive_kms_key_id) == expected


def test_kms_without_a_key_id_is_refused_naming_the_key_variable():
    assert error_of(env(ARCHIVE_ENCRYPTION="kms")).startswith("ARCHIVE_KMS_KEY_ID: required with "
                                                              "ARCHIVE_ENCRYPTION=kms")


@pytest.mark.parametrize("mode", [None, "none", "obs"])
def test_a_kms_key_id_without_kms_is_refused(mode):
    message = error_of(env(ARCHIVE_ENCRYPTION=mode, ARCHIVE_KMS_KEY_ID="key-1"))
    assert message.startswith("ARCHIVE_KMS_KEY_ID=key-1: only with ARCHIVE_ENCRYPTION=kms")


@pytest.mark.parametrize("name, raw, form", [
    ("ARCHIVE_ENCRYPTION", "sse-c", "must be none, obs or kms"),
    ("ARCHIVE_ENCRYPTION", "aes256", "must be none, obs or kms"),
    ("ARCHIVE_KMS_KEY_ID", "a key", "must be a KMS key id"),
])
def test_malformed_encryption_settings_name_their_variable(name, raw, form):
    changes = {name: raw, **({"ARCHIVE_ENCRYPTION": "kms"} if name == "ARCHIVE_KMS_KEY_ID" else {})}
    assert error_of(env(**changes)).startswith(f"{name}={raw}: {form}")
