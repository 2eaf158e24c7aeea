"""Cold start: a fresh interpreter importing a function's handler (loaded by path, as the runtime does) and
running its no-op invocation, against a fresh interpreter importing the SDKs alone.

No-op invocation (no network): `load_config()` from the function's environment and the event parsed by
`parse_collector_event` ({"action": "sweep"}) or `parse_archiver_event` (a classic OBS event for one pending job
key); this is the figure the target applies to. A second, informational figure per function goes on to what the
first real invocation does before its first API call: the service built by `shared.wiring.build_collector` /
`build_archiver` (where each function imports its own service module), with the SDK clients it needs (the OBS
client loads the CA bundle to verify certificates), the queue and the deadline. The figure is the time inside
the child from its first statement to the end of that work; interpreter start-up itself (the same for both
sides) is left out. Medians of COLD_RUNS (default 11, 3 under BENCH_QUICK) children per case, interleaved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.bench.common import ROOT, Row, median, progress, quick

TARGET = 1.2

SDKS = "import huaweicloudsdkcore, huaweicloudsdkdcs.v2, obs, requests"

HANDLER = """
import importlib.util, sys
sys.path.insert(0, {root!r})
spec = importlib.util.spec_from_file_location("index", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from shared.config import load_config
from shared.events import {parser}
from shared.logs import logger_for
from shared.wiring import {builder}
config = load_config({config_args})
request = {parser}({event!r})
{build}
"""
BUILD = 'service = {builder}(config, None, logger_for(None, function="bench"))'


ARCHIVER_EVENT = {"Records": [{
    "eventVersion": "3.0", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventRegion": "cn-north-4",
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
           "bucket": {"name": "bench-queue", "arn": "arn:aws:s3:::bench-queue"},
           "object": {"key": "redis-run-log-jobs/pending/0f1e2d3c.json", "size": 512, "eTag": "0" * 32,
                      "sequencer": "0"}},
}]}

ENV = {"DCS_REGION": "cn-north-4", "PROJECT_ID": "0b1c2d3e4f5a4b6c8d7e9f0a1b2c3d4e",
       "INSTANCE_TAGS": "archive=yes", "ARCHIVE_BUCKET": "bench-archive", "QUEUE_BUCKET": "bench-queue",
       "HUAWEICLOUD_SDK_AK": "BENCHAK0000000000000", "HUAWEICLOUD_SDK_SK": "bench-secret-key"}


def _child(body: str) -> float:
    code = f"import time\n_t0 = time.perf_counter()\n{body}\nprint(time.perf_counter() - _t0)\n"
    env = {**os.environ, **ENV}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up child writes the .pyc files, as a package ships them
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child failed: {proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def bench_coldstart() -> list[Row]:
    n = int(os.environ.get("COLD_RUNS", "3" if quick() else "11"))
    functions = {
        "collector": dict(parser="parse_collector_event", builder="build_collector", config_args="",
                          event={"action": "sweep"}),
        "archiver": dict(parser="parse_archiver_event", builder="build_archiver", config_args="needs_tags=False",
                         event=json.loads(json.dumps(ARCHIVER_EVENT))),
    }
    cases = {}
    for name, args in functions.items():
        path = str(ROOT / f"functions/{name}/index.py")
        cases[name] = HANDLER.format(root=str(ROOT), path=path, build="", **args)
        cases[f"{name}+build"] = HANDLER.format(root=str(ROOT), path=path,
                                                build=BUILD.format(builder=args["builder"]), **args)
    _child(SDKS)  # warm the page cache and the bytecode caches once, for both sides
    for body in cases.values():
        _child(body)
    times: dict[str, list[float]] = {"sdks": [], **{k: [] for k in cases}}
    for i in range(n):  # interleaved, so a noisy moment hits every case alike
        progress(f"cold start: round {i + 1}/{n}")
        times["sdks"].append(_child(SDKS))
        for name, body in cases.items():
            times[name].append(_child(body))
    base = median(times["sdks"])
    rows = []
    for name in cases:
        fig = median(times[name])
        function, built = name.partition("+")[::2]
        case = (f"{function}: + service and clients built (first invocation's set-up)" if built
                else f"{function}: import handler + no-op invocation (median of {n})")
        rows.append(Row("cold start", case, f"{fig * 1000:.0f} ms",
                        f"{base * 1000:.0f} ms (import the 3 SDKs + requests)", fig / base,
                        "informational" if built else f"≤ {TARGET}", None if built else fig / base <= TARGET))
    return rows
