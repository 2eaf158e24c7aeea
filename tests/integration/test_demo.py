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

    # where the report is: the collector's daily copy (written by the sweep), a local copy, the commands
    assert '"report_written": true' in out
    assert "daily copy (written by the collector): s3://demo-redis-log-archive/redis-run-logs/_report/index.html" in out
    assert "local copy: build/demo-report.html" in out
    page = (ROOT / "build" / "demo-report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'data-instance="catalog-cluster"' in page
    assert re.search(r"python -m shared.cli report-link\n  -> http://127\.0\.0\.1:\d+/demo-redis-log-archive/"
                     r"redis-run-logs/_report/index\.html\?\S*Signature=", out)
    # and a grep that finds something in the demo's logs, with its hits
    assert "== grep: python -m shared.cli grep 'Connection with master lost' --instance session-store --since -7" in out
    hits = re.findall(r"^  \d{4}-\d{2}-\d{2} [\d.]+ .*# Connection with master lost\.$", out, flags=re.M)
    assert len(hits) == 5, "the first five hits are shown"
    found = re.search(r"^  (\d+) matching line\(s\) in (\d+) node-day\(s\)$", out, flags=re.M)
    assert found and int(found.group(1)) > 5 and int(found.group(2)) > 0
    # the ledger shows every node's every day settled, and the manifests of the week verify, contents re-hashed
    assert re.search(r"^  3 instance\(s\), 63 node-days: \d+ archived, \d+ no-log, 0 failed, 0 missing \(exit 0\)$",
                     out, flags=re.M)
    assert re.search(r"^  7 manifest\(s\), 57 object\(s\) checked, \d+ bytes re-read: 0 problem\(s\) \(exit 0\)$",
                     out, flags=re.M)
