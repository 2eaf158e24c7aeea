"""The local cloud wired together: DCS emulator + SeaweedFS buckets + the environment a deployed function has,
with helpers to run the collector and the archiver as the platform would and to read what they left."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional

from shared.config import Config, load_config
from shared.events import CollectorRequest, parse_archiver_event
from shared.logs import logger_for
from shared.obs import Obs
from shared.wiring import build_archiver, build_collector
from tests.localcloud.functiongraph import Context, LocalObsTrigger


@dataclass
class ArchivedFile:
    key: str
    data: bytes  # the original bytes (gunzipped when compressed)
    metadata: dict


@dataclass
class LocalCloud:
    seaweed: Any
    emulator: Any
    archive_bucket: str
    queue_bucket: str
    tags: str = "archive=yes"
    contexts: list[Context] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.obs_client = self.seaweed.client()
        self.obs = Obs(self.obs_client)

    @property
    def env(self) -> dict[str, str]:
        """The function's environment variables on the local cloud."""
        return {
            "DCS_ENDPOINT": self.emulator.endpoint,
            "PROJECT_ID": self.emulator.project_id,
            "INSTANCE_TAGS": self.tags,
            "OBS_ENDPOINT": self.seaweed.endpoint,
            "OBS_PATH_STYLE": "true",
            "ARCHIVE_BUCKET": self.archive_bucket,
            "QUEUE_BUCKET": self.queue_bucket,
            "LINK_HOST_SUFFIXES": "127.0.0.1",
            "LINK_ALLOW_HTTP_HOSTS": "127.0.0.1",
            "COLLECT_SETTLE_SECONDS": "0",
            "HUAWEICLOUD_SDK_AK": self.seaweed.access_key,
            "HUAWEICLOUD_SDK_SK": self.seaweed.secret_key,
        }

    def create_buckets(self) -> None:
        for bucket in {self.archive_bucket, self.queue_bucket}:
            resp = self.obs_client.createBucket(bucket)
            if resp.status >= 300:
                raise RuntimeError(f"createBucket {bucket}: {resp.status} {resp.errorCode}")

    def close(self) -> None:
        self.obs_client.close()

    # --- running the functions -------------------------------------------------------------------------
    def config(self, **overrides: str) -> Config:
        return load_config({**self.env, **overrides}, needs_tags=True)

    def context(self, timeout: float = 900, function_name: str = "local-function") -> Context:
        ctx = Context(timeout=timeout, function_name=function_name, echo_logs=False,
                      project_id=self.emulator.project_id)
        self.contexts.append(ctx)
        return ctx

    def run_collector(self, action: str = "collect", instance_ids: Optional[list[str]] = None,
                      timeout: float = 900, **overrides: str) -> dict:
        """The collector's service as its handler builds it, on the emulator's clock."""
        ctx = self.context(timeout, "collector")
        log = logger_for(ctx, function="collector")
        collector = build_collector(self.config(**overrides), ctx, log, now=self.emulator.clock.now)
        ids = tuple(instance_ids) if instance_ids is not None else None
        return collector.run(CollectorRequest(action, ids, "direct"))

    def archiver_handler(self, **overrides: str) -> Any:
        """A handler like functions/archiver/index.py's, on the emulator's clock (the real one reads the time of
        this machine, which the emulator's scenario days need not follow)."""
        def handler(event: Any, context: Context) -> dict:
            log = logger_for(context, function="archiver")
            archiver = build_archiver(self.config(**overrides), context, log, now=self.emulator.clock.now)
            return archiver.handle(parse_archiver_event(event))
        return handler

    def trigger(self, shape: str = "classic", duplicate: bool = False, reorder: bool = False,
                timeout: float = 900, **overrides: str) -> LocalObsTrigger:
        """The archiver's OBS trigger; `timeout` is the function's (each invocation's time budget)."""
        prefix = self.config(**overrides).queue_prefix + "pending/"

        def context_factory() -> Context:
            return self.context(timeout, "archiver")

        return LocalObsTrigger(self.obs_client, self.queue_bucket, prefix, self.archiver_handler(**overrides),
                               shape=shape, duplicate=duplicate, reorder=reorder,
                               context_factory=context_factory)

    # --- reading the results ---------------------------------------------------------------------------
    def archive_keys(self, prefix: str = "redis-run-logs/") -> list[str]:
        """The archived log objects (not the manifests and the report, kept under `_manifest/` and `_report/`)."""
        return sorted(o.key for o in self.obs.list(self.archive_bucket, prefix)
                      if not o.key[len(prefix):].startswith("_"))

    def manifest_keys(self, prefix: str = "redis-run-logs/") -> list[str]:
        return sorted(o.key for o in self.obs.list(self.archive_bucket, f"{prefix}_manifest/"))

    def queue_keys(self, state: str, prefix: str = "redis-run-log-jobs/") -> list[str]:
        return sorted(o.key for o in self.obs.list(self.queue_bucket, f"{prefix}{state}/"))

    def read_archived(self, key: str) -> ArchivedFile:
        raw = self.obs.get_bytes(self.archive_bucket, key)
        assert raw is not None, f"{key} is not in the archive"
        data = gzip.decompress(raw) if key.endswith(".gz") else raw
        return ArchivedFile(key, data, self.obs.head(self.archive_bucket, key) or {})

    def open_uploads(self) -> list[tuple[str, str]]:
        return self.obs.open_uploads(self.archive_bucket, "")

    def log_lines(self) -> list[str]:
        """Every line the functions logged through their contexts."""
        return [line for ctx in self.contexts for line in ctx.getLogger().messages()]

    def final_days(self, instance_id: str) -> list[str]:
        """The log days an instance has that ended before the emulator's now (in its timezone)."""
        inst = self.emulator.instance(instance_id)
        today = self.emulator.today()
        return sorted(d.isoformat() for d in inst.log_days if d < today)

    def yesterday(self) -> str:
        return (self.emulator.today() - timedelta(days=1)).isoformat()


def start_mid_day(emulator) -> None:
    """Keep a scenario inside one log day: a case that advances the emulator's clock by minutes or hours (re-drives,
    the next timer run) must not turn "today" into a finished day half-way, whatever the time of day the tests run
    at. At 21:00 or later (in the emulator's timezone) the clock goes back to 21:00; moving it back (never forward)
    keeps the sweep's pending-age check, which compares with the store's real times, harmless."""
    now = emulator.clock.now()
    local = now.astimezone(emulator.tz)
    latest = local.replace(hour=21, minute=0, second=0, microsecond=0)
    if local > latest:
        emulator.clock.set(latest)
