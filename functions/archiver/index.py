"""Archiver function (OBS- or EventGrid-triggered): archive the run logs of each pending job it is told of.

Handler: index.handler. Configuration: environment variables (README, "Configuration").
"""

from typing import Any

from shared.config import load_config
from shared.events import parse_archiver_event
from shared.logs import logger_for
from shared.wiring import build_archiver


def handler(event: Any, context: Any) -> dict:
    log = logger_for(context, function="archiver")
    try:
        config = load_config(needs_tags=False)
        request = parse_archiver_event(event)
    except ValueError as exc:  # ConfigError, EventError: the platform's async retry and failure destination
        log.error("invocation_rejected", error=str(exc))  # keep the event; the error names what was received
        raise
    return build_archiver(config, context, log).handle(request)
