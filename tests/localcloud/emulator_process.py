"""The DCS emulator in a process of its own, so that a measured process holds only the code under test.

`EmulatorProcess(spec).start()` runs `python -m tests.localcloud.emulator_process --control` (a fresh
interpreter; no `__main__` guard needed in the caller), which builds a `DcsEmulator` over the store the spec
names, adds the spec's instances, arms its latencies and knobs, and serves on a free loopback port. The parent
gets a proxy with what tests and benchmarks use of an emulator: `endpoint`, `project_id`, `clock` (a mirror of
the child's frozen scenario clock; `set`/`advance` go to the child), `today()`, `add_instance()`,
`faults.latency()/add()/clear()`, `set_knob()`, `store_final_logs()`, `reset_counters()`, `requests`,
`op_counts()`, `peak_in_flight`. Every call is one round trip over a pair of pipes (multiprocessing's framed
pickles). The child stops when asked (`stop()`) or when its end of the pipe reports the parent gone (exited or
killed).

From a shell, `python -m tests.localcloud.emulator_process SPEC` (a JSON file, or the JSON text itself) prints
one JSON line (`endpoint`, `project_id`, `internal_bucket`) and serves until its stdin closes or it is
terminated.

The spec is plain JSON:

    {"store": {"endpoint": "http://127.0.0.1:8333", "access_key": "...", "secret_key": "..."},
     "emulator": {"ak": "...", "sk": "...", "now": "2026-11-23T04:00:00+00:00", ...},  # DcsEmulator keywords
     "knobs": {"proxy_downloads": true},
     "latency": {"*": 0.05},
     "instances": [{"count": 1000, "name": "c{i}", "tags": {"archive": "yes"}, "cache_mode": "cluster",
                    "shards": 3, "replicas": 2, "log_days": []}]}

An instance entry takes `add_instance`'s keywords; with `count`, `{i}` in `name` (and in `instance_id`, if given)
is the running number.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Optional

KNOBS = ("signing_skew_seconds", "in_progress_visible", "redislog_offset_base", "proxy_downloads",
         "collection_delay", "link_expiry", "reuse_final_logs")
START_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StoreRef:
    """Where the emulator's store is (a running SeaweedFS): enough to make clients in another process."""

    endpoint: str
    access_key: str
    secret_key: str

    def client(self, access_key: Optional[str] = None, secret_key: Optional[str] = None,
               security_token: Optional[str] = None) -> Any:
        from obs import ObsClient

        return ObsClient(access_key_id=access_key or self.access_key, secret_access_key=secret_key or self.secret_key,
                         security_token=security_token, server=self.endpoint, path_style=True, max_retry_count=0,
                         timeout=30)


def store_spec(store: Any) -> dict:
    """The spec's `store` entry for a running SeaweedFS (anything with endpoint, access_key, secret_key)."""
    return {"endpoint": store.endpoint, "access_key": store.access_key, "secret_key": store.secret_key}


# ---------------------------------------------------------------------------------------------------- child side

def build(spec: dict) -> Any:
    """A started DcsEmulator with the spec's scenario (in the calling process)."""
    from tests.localcloud.dcs import DcsEmulator

    options = dict(spec.get("emulator") or {})
    if isinstance(options.get("now"), str):
        options["now"] = datetime.fromisoformat(options["now"])
    emu = DcsEmulator(StoreRef(**spec["store"]), **options)
    for name, value in (spec.get("knobs") or {}).items():
        _set_knob(emu, name, value)
    emu.start()
    try:
        for op, seconds in (spec.get("latency") or {}).items():
            emu.faults.latency(op, float(seconds))
        _add_instances(emu, spec.get("instances") or [])
    except BaseException:
        emu.stop()
        raise
    return emu


def _set_knob(emu: Any, name: str, value: Any) -> None:
    if name not in KNOBS:
        raise ValueError(f"unknown emulator knob {name!r}; one of {KNOBS}")
    setattr(emu, name, value)


def _add_instances(emu: Any, entries: list[dict]) -> list[str]:
    ids = []
    for entry in entries:
        entry = dict(entry)
        count = int(entry.pop("count", 1))
        name = entry.pop("name", "i{i}")
        instance_id = entry.pop("instance_id", None)
        for i in range(count):
            ids.append(emu.add_instance(name=name.format(i=i), **entry,
                                        instance_id=instance_id.format(i=i) if instance_id else None).instance_id)
    return ids


def _describe(emu: Any) -> dict:
    return {"endpoint": emu.endpoint, "project_id": emu.project_id, "ak": emu.ak, "sk": emu.sk,
            "log_timezone": emu.log_timezone, "internal_bucket": emu.internal_bucket,
            "now": emu.clock.now().isoformat()}


def _latency(emu: Any, op: str, seconds: float) -> None:
    emu.faults.latency(op, seconds)


def _fault(emu: Any, op: str, kind: str, kwargs: dict) -> None:
    emu.faults.add(op, kind, **kwargs)


def _clock_set(emu: Any, instant: datetime) -> datetime:
    emu.clock.set(instant)
    return emu.clock.now()


COMMANDS: dict[str, Callable[..., Any]] = {
    "add_instance": lambda emu, kwargs: emu.add_instance(**kwargs),
    "add_instances": _add_instances,
    "instance": lambda emu, instance_id: emu.instance(instance_id),
    "entries": lambda emu, instance_id: emu.entries(instance_id),
    "log_bytes": lambda emu, *args: emu.log_bytes(*args),
    "latency": _latency,
    "fault": _fault,
    "clear_faults": lambda emu: emu.faults.clear(),
    "set_knob": _set_knob,
    "store_final_logs": lambda emu, instance_ids, threads: emu.store_final_logs(instance_ids, threads),
    "reset_counters": lambda emu: emu.reset_counters(),
    "requests": lambda emu: list(emu.requests),
    "op_counts": lambda emu: dict(Counter(s.op for s in emu.requests)),
    "peak_in_flight": lambda emu: emu.peak_in_flight,
    "clock_set": _clock_set,
    "clock_advance": lambda emu, seconds, delta: emu.clock.advance(seconds, **delta),
    "describe": _describe,
}


def _serve(commands: Connection, answers: Connection) -> None:
    """The child's main: build from the first message, report, then answer commands until told to stop or
    the parent is gone."""
    try:
        emu = build(commands.recv())
    except (EOFError, OSError):
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        answers.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        answers.send(("ok", _describe(emu)))
        while True:
            try:
                name, args = commands.recv()
            except (EOFError, OSError):  # the parent went away
                return
            if name == "stop":
                answers.send(("ok", None))
                return
            try:
                answers.send(("ok", COMMANDS[name](emu, *args)))
            except Exception as exc:  # noqa: BLE001 - the parent raises it as its own
                answers.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        emu.stop()


# ---------------------------------------------------------------------------------------------------- parent side

class RemoteError(RuntimeError):
    """The emulator's process answered a call with an error (its text), or could not start."""


class _Clock:
    """A mirror of the child's scenario clock, which stays frozen until set or advanced (through here)."""

    def __init__(self, remote: EmulatorProcess, now: datetime) -> None:
        self._remote, self._now = remote, now

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = self._remote._call("clock_set", instant)

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        self._now = self._remote._call("clock_advance", seconds, delta)
        return self._now


class _Faults:
    def __init__(self, remote: EmulatorProcess) -> None:
        self._remote = remote

    def latency(self, op: str, seconds: float) -> _Faults:
        self._remote._call("latency", op, seconds)
        return self

    def add(self, op: str, kind: str, **kwargs: Any) -> None:
        self._remote._call("fault", op, kind, kwargs)

    def clear(self) -> None:
        self._remote._call("clear_faults")


class EmulatorProcess:
    """A DcsEmulator serving from a process of its own; use as a context manager, or start()/stop()."""

    def __init__(self, spec: dict) -> None:
        self.spec = json.loads(json.dumps(spec))  # plain JSON, as from a file
        self.endpoint = self.project_id = self.ak = self.sk = self.log_timezone = self.internal_bucket = ""
        self.clock: Optional[_Clock] = None
        self.faults = _Faults(self)
        self._process: Optional[subprocess.Popen] = None
        self._commands: Optional[Connection] = None
        self._answers: Optional[Connection] = None
        self._lock = threading.Lock()

    def start(self) -> EmulatorProcess:
        command_r, command_w = os.pipe()
        answer_r, answer_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.localcloud.emulator_process", "--control", str(command_r),
                 str(answer_w)], pass_fds=(command_r, answer_w), stdin=subprocess.DEVNULL, cwd=str(ROOT), env=env)
        finally:
            os.close(command_r)  # the child's ends: once it exits, our reads see EOF
            os.close(answer_w)
        self._commands = Connection(command_w, readable=False)
        self._answers = Connection(answer_r, writable=False)
        self._commands.send(self.spec)
        if not self._answers.poll(START_TIMEOUT):
            self.stop()
            raise RemoteError(f"the emulator's process did not start within {START_TIMEOUT:.0f} s")
        try:
            info = self._answer()
        except RemoteError:
            self.stop()
            raise
        self.endpoint, self.project_id = info["endpoint"], info["project_id"]
        self.ak, self.sk, self.log_timezone = info["ak"], info["sk"], info["log_timezone"]
        self.internal_bucket = info["internal_bucket"]
        self.clock = _Clock(self, datetime.fromisoformat(info["now"]))
        return self

    def stop(self) -> None:
        commands, answers = self._commands, self._answers
        self._commands = self._answers = None
        if commands is not None and answers is not None:
            with self._lock:
                try:
                    commands.send(("stop", ()))
                    if answers.poll(10):
                        answers.recv()
                except (EOFError, OSError):
                    pass
                commands.close()
                answers.close()
        process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(5)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    # ---- calls

    def _answer(self) -> Any:
        try:
            status, value = self._answers.recv()
        except (EOFError, OSError) as exc:
            raise RemoteError("the emulator's process is gone") from exc
        if status != "ok":
            raise RemoteError(value)
        return value

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            if self._commands is None:
                raise RemoteError("the emulator's process is not running")
            self._commands.send((name, args))
            return self._answer()

    def add_instance(self, **kwargs: Any) -> Any:
        """As DcsEmulator.add_instance; returns a snapshot of the Instance."""
        return self._call("add_instance", kwargs)

    def add_instances(self, entries: list[dict]) -> list[str]:
        """Spec-style instance entries (with `count` and `{i}` in `name`); returns the new ids."""
        return self._call("add_instances", entries)

    def instance(self, instance_id: str) -> Any:
        return self._call("instance", instance_id)

    def entries(self, instance_id: str) -> list:
        return self._call("entries", instance_id)

    def log_bytes(self, instance_id: str, replication_ip: str, day: date | str,
                  upto: Optional[datetime] = None) -> bytes:
        return self._call("log_bytes", instance_id, replication_ip, day, upto)

    def set_knob(self, name: str, value: Any) -> None:
        self._call("set_knob", name, value)

    def store_final_logs(self, instance_ids: Optional[list[str]] = None, threads: int = 4) -> int:
        """As DcsEmulator.store_final_logs (with the `reuse_final_logs` knob set)."""
        return self._call("store_final_logs", instance_ids, threads)

    def reset_counters(self) -> None:
        self._call("reset_counters")

    @property
    def requests(self) -> list:
        """A snapshot of the requests served so far (Served records)."""
        return self._call("requests")

    def op_counts(self) -> Counter:
        """Requests served so far, by operation (cheaper than `requests`)."""
        return Counter(self._call("op_counts"))

    @property
    def peak_in_flight(self) -> int:
        return self._call("peak_in_flight")

    def today(self) -> date:
        from tests.localcloud.redislog_text import parse_offset

        return self.clock.now().astimezone(parse_offset(self.log_timezone)).date()


# ---------------------------------------------------------------------------------------------------- shell

def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--control":  # started by EmulatorProcess: commands and answers on pipes
        _serve(Connection(int(argv[1]), writable=False), Connection(int(argv[2]), readable=False))
        return 0
    if len(argv) != 1:
        print("usage: python -m tests.localcloud.emulator_process SPEC.json|'{json}'", file=sys.stderr)
        return 2
    text = argv[0] if argv[0].lstrip().startswith("{") else open(argv[0]).read()
    emu = build(json.loads(text))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def watch_stdin() -> None:  # the parent closing our stdin (or exiting) ends the server
        try:
            while sys.stdin.read(65536):
                pass
        finally:
            done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        info = _describe(emu)
        print(json.dumps({k: info[k] for k in ("endpoint", "project_id", "internal_bucket")}), flush=True)
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
