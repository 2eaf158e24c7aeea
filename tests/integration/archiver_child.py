"""One archiver invocation in a process of its own, for the fault matrix's SIGKILL case.

Built as `LocalCloud.archiver_handler` builds it (the environment is the function's, `FAULT_NOW` stands for the
emulator's frozen clock), it processes the pending job `FAULT_JOB_KEY`. After each multipart part it prints
`PART_UPLOADED <n> <key> <upload id>` and pauses `FAULT_PART_PAUSE` seconds (a slow network), so the test can kill
it with the copy in flight.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

from shared.config import load_config
from shared.events import parse_archiver_event
from shared.logs import logger_for
from shared.obs import Obs
from shared.wiring import build_archiver
from tests.localcloud.functiongraph import Context, obs_classic_event


def main() -> None:
    now = datetime.fromisoformat(os.environ["FAULT_NOW"])
    pause = float(os.environ.get("FAULT_PART_PAUSE", "0"))
    upload_part = Obs.upload_part

    def announced_upload_part(self: Obs, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        etag = upload_part(self, bucket, key, upload_id, number, data)
        print(f"PART_UPLOADED {number} {key} {upload_id}", flush=True)
        time.sleep(pause)
        return etag

    Obs.upload_part = announced_upload_part  # type: ignore[method-assign]
    config = load_config(os.environ, needs_tags=False)
    context = Context(function_name="archiver", echo_logs=True, project_id=config.project_id)
    log = logger_for(context, function="archiver")
    archiver = build_archiver(config, context, log, now=lambda: now)
    event = obs_classic_event(config.queue_bucket, [os.environ["FAULT_JOB_KEY"]])
    summary = archiver.handle(parse_archiver_event(event))
    print("SUMMARY " + json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main()
