"""Configuration from environment variables: every name in the design's table, validated at start-up.

A wrong or missing value raises ConfigError naming the variable and the form it expects, before any API call.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Callable, Mapping, Optional, TypeVar

T = TypeVar("T")

QUERY_TIMES = (0, 1, 3, 7)
STORAGE_CLASSES = ("STANDARD", "WARM", "COLD")
COMPRESSIONS = ("gzip", "none")
# Server-side encryption of archived objects: none, SSE-OBS (keys OBS manages) or SSE-KMS (a KMS key): api-obs
# obs_04_0188 "Server-Side Encryption", obs_04_0173 "SSE-OBS", obs_04_0106 "SSE-KMS".
ENCRYPTIONS = ("none", "obs", "kms")
REPLICA_CHOICES = ("all", "master")
_TAG_KEY = re.compile(r"^[^=,\s][^=,]*$")
_TZ = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_OBS_HOST = re.compile(r"^obs\.[a-z0-9-]+\.([a-z0-9.-]+\.[a-z]{2,})$")
# A KMS key as OBS takes it in x-obs-server-side-encryption-kms-key-id: `key_id` or
# `regionID:domainID:key/key_id` (api-obs obs_04_0106); an alias form (`alias/...`) passes too.
_KMS_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:/._-]{0,254}$")

# Regions with an OBS endpoint, from the OBS region table of Huawei Cloud's Python SDK v3
# (huaweicloud/huaweicloud-sdk-python-v3, huaweicloud-sdk-obs/huaweicloudsdkobs/v1/region/obs_region.py; that
# package is not a dependency here): `https://obs.<region>.myhuaweicloud.com`, except where the region's domain
# differs (the OBS console's "Regions and Endpoints" pages: eu-west-101 is myhuaweicloud.eu).
OBS_REGIONS = frozenset((
    "af-north-1", "af-south-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5", "cn-north-1", "cn-north-2",
    "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12", "cn-south-1", "cn-south-2", "cn-south-4",
    "cn-southwest-2", "cn-southwest-3", "eu-west-101", "la-north-2", "la-south-2", "me-east-1", "na-mexico-1",
    "ru-northwest-2", "sa-brazil-1", "sa-peru-1", "tr-west-1",
))
OBS_DOMAINS = {"eu-west-101": "myhuaweicloud.eu"}
DEFAULT_DOMAIN = "myhuaweicloud.com"


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it and the expected form."""


@dataclass(frozen=True)
class Config:
    region: str
    dcs_endpoint: str
    project_id: str
    instance_tags: tuple[tuple[str, str], ...]
    query_time: int
    replicas: str
    obs_endpoint: str
    archive_bucket: str
    archive_prefix: str
    archive_storage_class: str
    archive_compression: str
    queue_bucket: str
    queue_prefix: str
    link_host_suffixes: tuple[str, ...]
    link_allow_http_hosts: tuple[str, ...]
    log_timezone: timezone
    archive_open_day: bool
    obs_path_style: bool = False
    archive_encryption: str = "none"
    archive_kms_key_id: str = ""
    query_time_auto: bool = True
    # tuning knobs
    collect_concurrency: int = 8
    copy_concurrency: int = 4
    api_max_retries: int = 5
    api_retry_wait_scale: float = 1.0
    collect_wait_seconds: int = 600
    collect_settle_seconds: int = 60
    job_max_attempts: int = 5
    job_retry_delay_seconds: int = 1800
    pending_redrive_seconds: int = 7200
    copy_max_attempts: int = 3
    part_size: int = 8 * 1024 * 1024
    single_put_max: int = 16 * 1024 * 1024
    gzip_level: int = 6
    deadline_margin_seconds: int = 30
    collect_poll_seconds: float = 2.0
    job_max_continuations: int = 50

    @property
    def tags_filter(self) -> str:
        """The ListInstances `tags` query value: `k1=v1,k2=v2`."""
        return ",".join(f"{k}={v}" for k, v in self.instance_tags)


def _get(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _parse(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], form: str) -> T:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ConfigError(f"{name}={raw}: must be {form}{detail}") from None


def _choice(choices: tuple, cast: Callable = str) -> Callable[[str], object]:
    def parse(raw: str) -> object:
        value = cast(raw)
        if value not in choices:
            raise ValueError("")
        return value
    return parse


def _in_range(low: float, high: float, cast: Callable[[str], float] = int) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = cast(raw)
        if not low <= value <= high:
            raise ValueError("")
        return value
    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    return _in_range(low, high, int)




def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("")


def parse_tags(raw: str) -> tuple[tuple[str, str], ...]:
    """`key=value[,key=value...]` into pairs; a key may appear once."""
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _TAG_KEY.match(key):
            raise ValueError(f"bad pair {item.strip()!r}")
        if any(k == key for k, _ in pairs):
            raise ValueError(f"key {key!r} given twice")
        pairs.append((key, value))
    return tuple(pairs)


def parse_timezone(raw: str) -> timezone:
    """A UTC offset: `+08:00`, `-05:30`, `UTC+08:00` or `Z`."""
    if raw.upper() in ("Z", "UTC"):
        return timezone.utc
    match = _TZ.match(raw.upper())
    if not match:
        raise ValueError("")
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        raise ValueError("")
    return timezone(-delta if sign == "-" else delta)


def _prefix(raw: str) -> str:
    raw = raw.lstrip("/")
    if ".." in raw.split("/"):
        raise ValueError("no '..' segments")
    return raw if raw.endswith("/") or not raw else raw + "/"


def _endpoint(raw: str) -> str:
    if not re.match(r"^https?://[^/\s]+/?$", raw):
        raise ValueError("")
    return raw.rstrip("/")


def _bucket(raw: str) -> str:
    if not _BUCKET.match(raw) or ".." in raw:
        raise ValueError("")
    return raw


def _host_list(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError("")
    return items


def _kms_key_id(raw: str) -> str:
    if not _KMS_KEY_ID.match(raw):
        raise ValueError("")
    return raw


def parse_encryption(env: Mapping[str, str]) -> tuple[str, str]:
    """ARCHIVE_ENCRYPTION and ARCHIVE_KMS_KEY_ID, checked together: `kms` needs a key id, and a key id without
    `kms` would be silently unused."""
    mode = _parse(env, "ARCHIVE_ENCRYPTION", "none", _choice(ENCRYPTIONS, str.lower), "none, obs or kms")
    key_id = _parse(env, "ARCHIVE_KMS_KEY_ID", "", _kms_key_id,
                    "a KMS key id (key_id or regionID:domainID:key/key_id)")
    if mode == "kms" and not key_id:
        raise ConfigError("ARCHIVE_KMS_KEY_ID: required with ARCHIVE_ENCRYPTION=kms (the id of the KMS key that "
                          "encrypts the archived objects)")
    if key_id and mode != "kms":
        raise ConfigError(f"ARCHIVE_KMS_KEY_ID={key_id}: only with ARCHIVE_ENCRYPTION=kms (it is {mode})")
    return mode, key_id


def load_config(env: Optional[Mapping[str, str]] = None, *, needs_tags: bool = True) -> Config:
    """Read and validate the whole configuration; raise ConfigError on the first bad variable.

    `needs_tags=False` is for the archiver, which does not choose instances.
    """
    env = os.environ if env is None else env

    region = _get(env, "DCS_REGION")
    dcs_endpoint = _parse(env, "DCS_ENDPOINT", None, _endpoint, "an http(s) URL without a path")
    if region is None and dcs_endpoint is None:
        raise ConfigError("DCS_REGION: required (a region id such as cn-north-4) unless DCS_ENDPOINT is set")
    if region is not None and not re.match(r"^[a-z]{2,}(-[a-z0-9]+)+$", region):
        raise ConfigError(f"DCS_REGION={region}: must be a region id such as cn-north-4")
    if dcs_endpoint is None:
        dcs_endpoint = default_dcs_endpoint(region or "")

    project_id = (_get(env, "PROJECT_ID") or _get(env, "RUNTIME_PROJECT_ID")
                  or _get(env, "HUAWEICLOUD_SDK_PROJECT_ID"))
    if project_id is None:
        raise ConfigError("PROJECT_ID: required (the project id; RUNTIME_PROJECT_ID or "
                          "HUAWEICLOUD_SDK_PROJECT_ID are used when it is not set)")
    if not re.match(r"^[0-9a-zA-Z-]{8,64}$", project_id):
        raise ConfigError(f"PROJECT_ID={project_id}: must be a project id (letters, digits, '-')")

    if needs_tags and _get(env, "INSTANCE_TAGS") is None:
        raise ConfigError("INSTANCE_TAGS: required, as key=value[,key=value...]")
    tags = _parse(env, "INSTANCE_TAGS", (), parse_tags, "key=value[,key=value...]")

    obs_endpoint = _parse(env, "OBS_ENDPOINT", None, _endpoint, "an http(s) URL without a path")
    if obs_endpoint is None:
        if region is None:
            raise ConfigError("OBS_ENDPOINT: required when DCS_REGION is not set")
        obs_endpoint = default_obs_endpoint(region)

    archive_bucket = _get(env, "ARCHIVE_BUCKET")
    if archive_bucket is None:
        raise ConfigError("ARCHIVE_BUCKET: required (the long-term bucket's name)")
    archive_bucket = _parse(env, "ARCHIVE_BUCKET", "", _bucket, "a bucket name (3-63 of a-z 0-9 . -)")
    queue_bucket = _parse(env, "QUEUE_BUCKET", archive_bucket, _bucket, "a bucket name (3-63 of a-z 0-9 . -)")

    archive_prefix = _parse(env, "ARCHIVE_PREFIX", "redis-run-logs/", _prefix, "a key prefix")
    queue_prefix = _parse(env, "QUEUE_PREFIX", "redis-run-log-jobs/", _prefix, "a key prefix")
    if queue_bucket == archive_bucket and _overlap(archive_prefix, queue_prefix):
        raise ConfigError(f"QUEUE_PREFIX={queue_prefix}: must not overlap ARCHIVE_PREFIX={archive_prefix} "
                          "in the same bucket")
    archive_encryption, archive_kms_key_id = parse_encryption(env)

    return Config(
        region=region or "",
        dcs_endpoint=dcs_endpoint,
        project_id=project_id,
        instance_tags=tags,
        query_time=_parse(env, "QUERY_TIME", 1, _choice(QUERY_TIMES, int), "one of 0, 1, 3, 7"),
        replicas=_parse(env, "REPLICAS", "all", _choice(REPLICA_CHOICES, str.lower), "all or master"),
        obs_endpoint=obs_endpoint,
        archive_bucket=archive_bucket,
        archive_prefix=archive_prefix,
        archive_storage_class=_parse(env, "ARCHIVE_STORAGE_CLASS", "STANDARD",
                                     _choice(STORAGE_CLASSES, str.upper), "STANDARD, WARM or COLD"),
        archive_compression=_parse(env, "ARCHIVE_COMPRESSION", "gzip", _choice(COMPRESSIONS, str.lower),
                                   "gzip or none"),
        queue_bucket=queue_bucket,
        queue_prefix=queue_prefix,
        link_host_suffixes=_parse(env, "LINK_HOST_SUFFIXES", ("." + obs_domain(obs_endpoint),), _host_list,
                                  "a comma-separated list of host suffixes"),
        link_allow_http_hosts=_parse(env, "LINK_ALLOW_HTTP_HOSTS", (), _host_list,
                                     "a comma-separated list of exact host names"),
        log_timezone=_parse(env, "LOG_TIMEZONE", timezone(timedelta(hours=8)), parse_timezone,
                            "a UTC offset such as +08:00"),
        archive_open_day=_parse(env, "ARCHIVE_OPEN_DAY", False, parse_bool, "true or false"),
        obs_path_style=_parse(env, "OBS_PATH_STYLE", False, parse_bool, "true or false"),
        archive_encryption=archive_encryption,
        archive_kms_key_id=archive_kms_key_id,
        query_time_auto=_parse(env, "QUERY_TIME_AUTO", True, parse_bool, "true or false"),
        collect_concurrency=_parse(env, "COLLECT_CONCURRENCY", 8, _int_range(1, 64), "an integer 1-64"),
        copy_concurrency=_parse(env, "COPY_CONCURRENCY", 4, _int_range(1, 16), "an integer 1-16"),
        api_max_retries=_parse(env, "API_MAX_RETRIES", 5, _int_range(0, 10), "an integer 0-10"),
        api_retry_wait_scale=_parse(env, "API_RETRY_WAIT_SCALE", 1.0, _in_range(0.001, 10.0, float),
                                    "a number 0.001-10"),
        collect_wait_seconds=_parse(env, "COLLECT_WAIT_SECONDS", 600, _int_range(0, 86400),
                                    "an integer 0-86400"),
        collect_settle_seconds=_parse(env, "COLLECT_SETTLE_SECONDS", 60, _int_range(0, 3600),
                                      "an integer 0-3600"),
        job_max_attempts=_parse(env, "JOB_MAX_ATTEMPTS", 5, _int_range(1, 100), "an integer 1-100"),
        job_retry_delay_seconds=_parse(env, "JOB_RETRY_DELAY_SECONDS", 1800, _int_range(0, 7 * 86400),
                                       "an integer 0-604800"),
        pending_redrive_seconds=_parse(env, "PENDING_REDRIVE_SECONDS", 7200, _int_range(60, 7 * 86400),
                                       "an integer 60-604800"),
        copy_max_attempts=_parse(env, "COPY_MAX_ATTEMPTS", 3, _int_range(1, 10), "an integer 1-10"),
        # 8 MiB parts keep a copy's peak RSS flat near 110 MB (tests/bench: 16 MiB parts reached 171 MB)
        part_size=_parse(env, "PART_SIZE_MB", 8, _int_range(5, 1024), "an integer 5-1024 (MiB)") * 2**20,
        single_put_max=_parse(env, "SINGLE_PUT_MAX_MB", 16, _int_range(1, 1024), "an integer 1-1024 (MiB)")
        * 2**20,
        gzip_level=_parse(env, "GZIP_LEVEL", 6, _int_range(1, 9), "an integer 1-9"),
        deadline_margin_seconds=_parse(env, "DEADLINE_MARGIN_SECONDS", 30, _int_range(0, 600),
                                       "an integer 0-600"),
        collect_poll_seconds=_parse(env, "COLLECT_POLL_SECONDS", 2.0, _in_range(0.05, 60.0, float),
                                    "a number 0.05-60"),
        job_max_continuations=_parse(env, "JOB_MAX_CONTINUATIONS", 50, _int_range(0, 1000),
                                     "an integer 0-1000"),
    )


def default_dcs_endpoint(region: str) -> str:
    """The region's DCS endpoint from the DCS SDK's region table (huaweicloudsdkdcs.v2.region.dcs_region)."""
    from huaweicloudsdkdcs.v2.region.dcs_region import DcsRegion

    try:
        return DcsRegion.value_of(region).endpoints[0].rstrip("/")
    except KeyError:
        raise ConfigError(f"DCS_ENDPOINT: required: region {region} is not in the DCS SDK's region table; set "
                          "DCS_ENDPOINT to the region's DCS endpoint (https://dcs.<region>.<domain>)") from None


def default_obs_endpoint(region: str) -> str:
    """The region's OBS endpoint, on the region's domain (see OBS_REGIONS)."""
    if region not in OBS_REGIONS:
        raise ConfigError(f"OBS_ENDPOINT: required: region {region} is not in the OBS region table; set "
                          "OBS_ENDPOINT to the region's OBS endpoint (https://obs.<region>.<domain>)")
    return f"https://obs.{region}.{OBS_DOMAINS.get(region, DEFAULT_DOMAIN)}"


def obs_domain(endpoint: str) -> str:
    """The domain of an `https://obs.<region>.<domain>` endpoint, which download links are expected on;
    myhuaweicloud.com for an endpoint of another form (an address, a private name)."""
    host = re.sub(r"^https?://", "", endpoint).split(":")[0].lower()
    match = _OBS_HOST.match(host)
    return match.group(1) if match else DEFAULT_DOMAIN


def _overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)
