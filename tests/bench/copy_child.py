"""One archiver copy in a fresh interpreter: `python -m tests.bench.copy_child '<json>'` prints a JSON result.

The process imports what the archiver function imports (shared.wiring pulls in both SDKs), builds its clients
as the function does (`shared.obs.build_client`), runs `shared.transfer.copy_link` once and reports the copy's
time, its CPU time (every thread of the process) and the process's peak RSS (VmHWM), with the RSS after the
imports as the idle baseline.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main(spec: dict) -> dict:
    from shared.obs import Obs, build_client
    from shared.runtime import Credentials
    from shared.transfer import copy_link
    from shared.wiring import download_session

    idle_kib = _status_kib("VmRSS")
    client = build_client(spec["endpoint"], Credentials(spec["ak"], spec["sk"]), path_style=True)
    obs = Obs(client)
    session = download_session(8)
    tap = None
    if spec.get("tap") == "digest":  # the archiver's tap: the node-day's digest, fed as the bytes stream through
        from shared.digest import Digest

        tap = Digest("2026-01-01").feed
    metadata = {"source-id": "bench", "instance-id": "bench", "log-day": "2026-01-01",
                "compression": spec["compression"], "copy": "final"}
    cpu_start, start = time.process_time(), time.perf_counter()
    result = copy_link(session, spec["url"], obs, spec["bucket"], spec["key"], metadata=metadata,
                       compression=spec["compression"], level=spec["level"], part_size=spec["part_size"],
                       single_put_max=spec["single_put_max"], uploader_threads=spec["threads"], tap=tap)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    client.close()
    if result.tap_error:
        raise RuntimeError(f"the tap failed: {result.tap_error}")
    return {"seconds": seconds, "cpu_seconds": cpu, "bytes_in": result.bytes_in, "bytes_out": result.bytes_out,
            "multipart": result.multipart, "idle_rss_kib": idle_kib, "peak_rss_kib": _status_kib("VmHWM"),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
