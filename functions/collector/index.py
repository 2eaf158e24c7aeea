"""Collector function (timer-triggered): collect the tagged DCS instances' run logs and enqueue one job each.

Handler: index.handler. Configuration: environment variables (README, "Configuration").
"""

from typing import Any

from shared.config import load_config
from shared.events import parse_collector_event
from shared.logs import logger_for
from shared.wiring import build_collector


def handler(event: Any, context: Any) -> dict:
    log = logger_for(context, function="collector")
    try:
        config = load_config()
        request = parse_collector_event(event)
    except ValueError as exc:  # ConfigError, EventError: fail before any API call, naming what is wrong
        log.error("invocation_rejected", error=str(exc))
        raise
    return build_collector(config, context, log).run(request)
