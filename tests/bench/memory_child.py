"""One archiver invocation in a fresh interpreter: `python -m tests.bench.memory_child '<json>'` prints a JSON
result with the process's peak RSS (VmHWM).

The process is what the archiver function runs: the handler's imports, `load_config` from the environment (the
spec's `env`), the service built by `shared.wiring.build_archiver` (as `functions/archiver/index.py` does, but on
the emulator's clock, as `tests.localcloud.pipeline` does), and one classic OBS event for the pending job.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main(spec: dict) -> dict:
    os.environ.update(spec["env"])
    from shared.config import load_config
    from shared.events import parse_archiver_event
    from shared.logs import logger_for
    from shared.wiring import build_archiver
    from tests.localcloud.functiongraph import Context, obs_classic_event

    idle_kib = _status_kib("VmRSS")
    now = datetime.fromisoformat(spec["now"])
    context = Context(timeout=900, function_name="archiver", memory_size=spec.get("memory_mb", 512),
                      echo_logs=False)
    event = obs_classic_event(spec["queue_bucket"], [spec["job_key"]])
    start = time.perf_counter()
    log = logger_for(context, function="archiver")
    summary = build_archiver(load_config(needs_tags=False), context, log, now=lambda: now).handle(
        parse_archiver_event(event))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "idle_rss_kib": idle_kib, "peak_rss_kib": _status_kib("VmHWM"),
            "archived": summary["archived"], "bytes_in": summary["bytes_in"], "bytes_out": summary["bytes_out"],
            "outcomes": summary["outcomes"], "jobs": summary["jobs"]}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
