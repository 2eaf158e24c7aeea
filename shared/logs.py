"""One JSON object per line, with a stable `event` name and the ids, so LTS search finds them.

On FunctionGraph the lines go through the context's logger; elsewhere to stderr. Credential values registered
with `add_secret` are masked in every line as a last line of defence: they are never passed in on purpose.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Optional

_MASK = "***"


class JsonLogger:
    def __init__(self, sink: Any = None, **fields: Any) -> None:
        """`sink` is a FunctionGraph logger (with .info/.warn/.error) or None for stderr."""
        self._sink = sink
        self._fields = fields
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def bind(self, **fields: Any) -> JsonLogger:
        """A logger that adds these fields to every line (shares sink and secrets)."""
        child = JsonLogger(self._sink, **{**self._fields, **fields})
        child._secrets = self._secrets
        child._lock = self._lock
        return child

    def add_secret(self, value: Optional[str]) -> None:
        if value and len(value) >= 6:
            self._secrets.add(value)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def _emit(self, level: str, event: str, fields: dict) -> None:
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                  "level": level, "event": event, **self._fields, **fields}
        line = json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":"))
        for secret in self._secrets:
            line = line.replace(secret, _MASK)
        with self._lock:
            if self._sink is None:
                print(line, file=sys.stderr, flush=True)
            elif level == "error":
                self._sink.error(line)
            elif level == "warning":
                getattr(self._sink, "warn", self._sink.info)(line)
            else:
                self._sink.info(line)


def logger_for(context: Any, **fields: Any) -> JsonLogger:
    """The JSON logger of one invocation: the context's logger on the platform, stderr elsewhere."""
    sink = None
    if context is not None and hasattr(context, "getLogger"):
        try:
            sink = context.getLogger()
        except Exception:  # a context without a working logger still gets its lines on stderr
            sink = None
    request_id = None
    if context is not None and hasattr(context, "getRequestID"):
        try:
            request_id = context.getRequestID()
        except Exception:
            request_id = None
    if request_id:
        fields.setdefault("request_id", request_id)
    return JsonLogger(sink, **fields)
