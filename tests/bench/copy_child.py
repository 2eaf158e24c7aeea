"""One archiver copy in a fresh interpreter: `python -m tests.bench.copy_child '<json>'` prints a JSON result.

The process imports what the archiver function imports (shared.wiring pulls in both SDKs), builds its clients
as the function does, runs `shared.transfer.copy_link` once and reports the copy's time and the process's peak
RSS (VmHWM), with the RSS after the imports as the idle baseline.
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
    from obs import ObsClient

    from shared.obs import Obs
    from shared.transfer import copy_link
    from shared.wiring import download_session

    idle_kib = _status_kib("VmRSS")
    client = ObsClient(access_key_id=spec["ak"], secret_access_key=spec["sk"], server=spec["endpoint"],
                       path_style=True, max_retry_count=3, timeout=60)
    obs = Obs(client)
    session = download_session(8)
    metadata = {"source-id": "bench", "instance-id": "bench", "log-day": "2026-01-01",
                "compression": spec["compression"], "copy": "final"}
    start = time.perf_counter()
    result = copy_link(session, spec["url"], obs, spec["bucket"], spec["key"], metadata=metadata,
                       compression=spec["compression"], level=spec["level"], part_size=spec["part_size"],
                       single_put_max=spec["single_put_max"])
    seconds = time.perf_counter() - start
    client.close()
    return {"seconds": seconds, "bytes_in": result.bytes_in, "bytes_out": result.bytes_out,
            "multipart": result.multipart, "idle_rss_kib": idle_kib, "peak_rss_kib": _status_kib("VmHWM"),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
