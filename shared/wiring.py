"""Builds the services from the configuration and the invocation's context: the one place clients are made.

Clients live for the container: warm invocations reuse their connection pools (rebuilt when the agency's
temporary credentials rotate).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Optional

import requests

from shared import dcs as dcs_shell
from shared import obs as obs_shell
from shared.config import Config
from shared.jobs import JobQueue
from shared.logs import JsonLogger
from shared.runtime import Deadline, credentials_from, trust_environment_only_for_proxies

if TYPE_CHECKING:  # each function imports only its own service (cold start)
    from shared.archiver import Archiver
    from shared.collector import Collector

_SESSION: Optional[requests.Session] = None
_SESSION_LOCK = threading.Lock()


def download_session(pool_size: int) -> requests.Session:
    """One requests session for presigned downloads, per container."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size,
                                                    max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            trust_environment_only_for_proxies(session)
            _SESSION = session
        return _SESSION


def _shells(config: Config, context: Any, log: JsonLogger,
            pool: int) -> tuple[dcs_shell.Dcs, obs_shell.Obs, JobQueue, Deadline]:
    """The clients, the job queue and the deadline both functions are built from."""
    creds = credentials_from(context)
    for secret in (creds.sk, creds.security_token):
        log.add_secret(secret)
    client = dcs_shell.build_client(config.dcs_endpoint, creds, config.project_id, pool_size=pool)
    dcs = dcs_shell.Dcs(client, max_retries=config.api_max_retries,
                        policy_factory=lambda: dcs_shell.RetryPolicy(scale=config.api_retry_wait_scale))
    obs = obs_shell.Obs(obs_shell.build_client(config.obs_endpoint, creds, path_style=config.obs_path_style))
    queue = JobQueue(obs, config.queue_bucket, config.queue_prefix)
    return dcs, obs, queue, Deadline.from_context(context, config.deadline_margin_seconds)


def build_collector(config: Config, context: Any, log: JsonLogger,
                    now: Optional[Callable[[], datetime]] = None) -> Collector:
    from shared.collector import Collector

    dcs, _, queue, deadline = _shells(config, context, log, config.collect_concurrency)
    return Collector(config, dcs, queue, log, deadline, **({"now": now} if now else {}))


def build_archiver(config: Config, context: Any, log: JsonLogger,
                   now: Optional[Callable[[], datetime]] = None) -> Archiver:
    from shared.archiver import Archiver

    dcs, obs, queue, deadline = _shells(config, context, log, config.copy_concurrency)
    return Archiver(config, dcs, obs, queue, download_session(config.copy_concurrency * 2), log, deadline,
                    **({"now": now} if now else {}))
