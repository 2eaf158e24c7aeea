"""`make demo` as a user runs it: every tagged node's files are listed, and nothing is left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def weed_processes() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"/weed"):
                found.add(int(entry.name))
    return found


@pytest.mark.slow
def test_demo_prints_every_tagged_nodes_files_and_leaves_no_process_behind():
    before = weed_processes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUAWEICLOUD_", "DCS_", "OBS_", "ARCHIVE_"))}
    done = subprocess.run([sys.executable, "tools/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    rows = re.findall(r"^(\S+)\s+(\d{4}-\d{2}-\d{2}) (group-\d+)\s+(redis_\S+)", out, flags=re.M)
    nodes = {(name, group, re.match(r"redis_([\d.]+)_", f).group(1)) for name, _, group, f in rows}
    # single-node 1, master/standby 2, cluster 3 x 2; the untagged and the Redis 3.0 instance have nothing
    assert {name for name, _, _ in nodes} == {"orders-cache", "session-store", "catalog-cluster"}
    assert len(nodes) == 1 + 2 + 6
    assert "jobs done: 3, retry: 0, failed: 0" in out
    assert '"archiver_summary"' not in out and "local cloud stopped" in out
    assert weed_processes() <= before, "the demo's SeaweedFS is gone"
