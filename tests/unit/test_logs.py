"""JSON lines with a stable event name; registered secrets never reach a line."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from shared.logs import JsonLogger, logger_for


class Sink:
    """A FunctionGraph-style logger that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, line: str) -> None:
        self.lines.append(("info", line))

    def warn(self, line: str) -> None:
        self.lines.append(("warn", line))

    def error(self, line: str) -> None:
        self.lines.append(("error", line))


class InfoOnlySink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def records(sink: Sink) -> list[dict]:
    return [json.loads(line) for _, line in sink.lines]


def test_each_call_writes_one_json_object_on_one_line_with_its_event():
    sink = Sink()
    log = JsonLogger(sink)
    log.info("job_enqueued", instance_id="i-1", note="two\nlines")
    assert len(sink.lines) == 1
    level, line = sink.lines[0]
    assert "\n" not in line
    record = json.loads(line)
    assert record["event"] == "job_enqueued"
    assert record["level"] == "info"
    assert record["instance_id"] == "i-1"
    assert record["note"] == "two\nlines"
    datetime.fromisoformat(record["time"])


def test_levels_go_to_the_matching_sink_method():
    sink = Sink()
    log = JsonLogger(sink)
    log.info("a")
    log.warning("b")
    log.error("c")
    assert [lvl for lvl, _ in sink.lines] == ["info", "warn", "error"]
    assert [r["level"] for r in records(sink)] == ["info", "warning", "error"]
    assert [r["event"] for r in records(sink)] == ["a", "b", "c"]


def test_a_sink_without_warn_gets_warnings_through_info():
    sink = InfoOnlySink()
    JsonLogger(sink).warning("slow")
    assert json.loads(sink.lines[0])["event"] == "slow"


def test_without_a_sink_lines_go_to_stderr(capsys):
    JsonLogger(None, function="collector").info("started", n=1)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["event"] == "started"
    assert json.loads(lines[0])["function"] == "collector"


def test_bound_fields_appear_on_every_line_and_call_fields_win():
    sink = Sink()
    log = JsonLogger(sink, function="archiver").bind(instance_id="i-1")
    log.info("a")
    log.info("b", instance_id="i-2")
    first, second = records(sink)
    assert (first["function"], first["instance_id"]) == ("archiver", "i-1")
    assert second["instance_id"] == "i-2"


def test_binding_does_not_change_the_parent():
    sink = Sink()
    parent = JsonLogger(sink)
    parent.bind(instance_id="i-1")
    parent.info("a")
    assert "instance_id" not in records(sink)[0]


def test_values_that_are_not_json_are_written_as_text():
    sink = Sink()
    JsonLogger(sink).info("a", when=datetime(2026, 11, 22, 1, 2, 3), ids={"x"}, data=b"raw")
    record = records(sink)[0]
    assert record["when"] == "2026-11-22 01:02:03"
    assert isinstance(record["ids"], str) and isinstance(record["data"], str)


def test_non_ascii_text_stays_readable():
    sink = Sink()
    JsonLogger(sink).info("a", name="订单缓存")
    assert "订单缓存" in sink.lines[0][1]


SECRET_AK = "HPUAXXXXEXAMPLEAK01"
SECRET_SK = "sk/Example+Secret=Value0123456789"


def test_registered_secrets_are_masked_wherever_they_appear():
    sink = Sink()
    log = JsonLogger(sink)
    log.add_secret(SECRET_AK)
    log.add_secret(SECRET_SK)
    log.error("call_failed", message=f"signature of {SECRET_AK} with {SECRET_SK} refused",
              nested={"sk": SECRET_SK}, items=[SECRET_AK])
    line = sink.lines[0][1]
    assert SECRET_AK not in line and SECRET_SK not in line
    record = json.loads(line)
    assert record["message"] == "signature of *** with *** refused"
    assert record["nested"] == {"sk": "***"}
    assert record["items"] == ["***"]


def test_secrets_registered_on_a_parent_are_masked_in_bound_loggers_and_back():
    sink = Sink()
    parent = JsonLogger(sink)
    child = parent.bind(instance_id="i-1")
    parent.add_secret(SECRET_AK)
    child.add_secret(SECRET_SK)
    child.info("a", v=SECRET_AK)
    parent.info("b", v=SECRET_SK)
    assert [r["v"] for r in records(sink)] == ["***", "***"]


def test_secrets_in_bound_fields_and_event_names_are_masked():
    sink = Sink()
    log = JsonLogger(sink, token=SECRET_AK)
    log.add_secret(SECRET_AK)
    log.info(f"event-{SECRET_AK}")
    assert SECRET_AK not in sink.lines[0][1]


@pytest.mark.parametrize("value", [None, "", "abc", "12345"])
def test_empty_and_very_short_values_are_not_treated_as_secrets(value):
    sink = Sink()
    log = JsonLogger(sink)
    log.add_secret(value)
    log.info("a", n="abc12345")
    assert records(sink)[0]["n"] == "abc12345"


def test_masking_does_not_break_the_json():
    sink = Sink()
    log = JsonLogger(sink)
    log.add_secret("secretvalue")
    log.info("a", x="secretvalue", y="ok")
    record = records(sink)[0]
    assert (record["x"], record["y"]) == ("***", "ok")


class Context:
    def __init__(self, logger: object = None, request_id: str | None = "req-42", broken: bool = False) -> None:
        self._logger, self._request_id, self._broken = logger, request_id, broken

    def getLogger(self) -> object:  # noqa: N802 - FunctionGraph's name
        if self._broken:
            raise RuntimeError("no logger")
        return self._logger

    def getRequestID(self) -> str | None:  # noqa: N802 - FunctionGraph's name
        if self._broken:
            raise RuntimeError("no id")
        return self._request_id


def test_logger_for_uses_the_context_logger_and_request_id():
    sink = Sink()
    logger_for(Context(sink), function="collector").info("started")
    record = records(sink)[0]
    assert record["request_id"] == "req-42"
    assert record["function"] == "collector"


def test_logger_for_keeps_an_explicit_request_id():
    sink = Sink()
    logger_for(Context(sink), request_id="mine").info("started")
    assert records(sink)[0]["request_id"] == "mine"


def test_logger_for_falls_back_to_stderr_when_the_context_fails(capsys):
    logger_for(Context(broken=True)).info("started")
    record = json.loads(capsys.readouterr().err.strip())
    assert record["event"] == "started"
    assert "request_id" not in record


def test_logger_for_without_a_context_writes_to_stderr(capsys):
    logger_for(None).info("started")
    assert json.loads(capsys.readouterr().err.strip())["event"] == "started"
