"""The command line (`python -m shared.cli`) as an operator runs it, against the local cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.integration.test_collector import TAGS

ROOT = Path(__file__).resolve().parents[2]


def cli(cloud, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **cloud.env, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=180)


def test_run_collects_then_archives_every_pending_job_in_process(cloud):
    emu = cloud.emulator
    made = [emu.add_instance(name="single", tags=TAGS, cache_mode="single"),
            emu.add_instance(name="ha", tags=TAGS, cache_mode="ha")]
    done = cli(cloud, "run")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["collector"]["jobs_enqueued"] == 2
    assert summary["archiver"]["outcomes"] == {"done": 2}
    expected = sorted(f"redis-run-logs/{i.instance_id}/{day}/{n.group_name}/redis_{n.replication_ip}_{day}.log.gz"
                      for i in made for n in i.nodes for day in cloud.final_days(i.instance_id))
    assert cloud.archive_keys() == expected
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert {"collector_summary", "job_progress"} <= {line["event"] for line in lines}
    assert cloud.seaweed.secret_key not in done.stderr + done.stdout

    again = cli(cloud, "run")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["collector"]["up_to_date"] == 2 and second["archiver"]["jobs"] == []
    assert cloud.archive_keys() == expected


def test_setup_buckets_creates_missing_buckets_with_lifecycle_rules_and_is_idempotent(cloud):
    archive, queue = f"archive-{uuid.uuid4().hex[:8]}", f"jobs-{uuid.uuid4().hex[:8]}"
    # SeaweedFS has no storage-class transitions (501 NotImplemented): expiry rules only on the local cloud
    args = ["setup-buckets", "--warm-after-days", "0", "--cold-after-days", "0", "--expire-after-days", "400",
            "--done-expire-days", "30"]
    try:
        first = cli(cloud, *args, ARCHIVE_BUCKET=archive, QUEUE_BUCKET=queue)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)["buckets"]
        assert report[archive]["created"] and report[queue]["created"]
        rules = cloud.obs_client.getBucketLifecycle(archive).body.lifecycleConfig.rule
        assert [(r.prefix, r.expiration.days) for r in rules] == [("redis-run-logs/", 400)]
        assert rules[0].abortIncompleteMultipartUpload.daysAfterInitiation == 7
        (done_rule,) = cloud.obs_client.getBucketLifecycle(queue).body.lifecycleConfig.rule
        assert (done_rule.prefix, done_rule.expiration.days) == ("redis-run-log-jobs/done/", 30)

        second = cli(cloud, *args, ARCHIVE_BUCKET=archive, QUEUE_BUCKET=queue)
        assert second.returncode == 0, second.stderr
        assert not any(b["created"] for b in json.loads(second.stdout)["buckets"].values())
    finally:
        for name in (archive, queue):
            cloud.seaweed.delete_bucket(name)


def test_setup_buckets_reports_what_the_store_refused(cloud):
    refused = cli(cloud, "setup-buckets")  # default WARM/COLD transitions: SeaweedFS does not implement them
    assert refused.returncode == 3
    assert "SetBucketLifecycle" in refused.stderr and "NotImplemented" in refused.stderr


def test_setup_buckets_refuses_contradictory_retention_before_any_request(cloud):
    bad = cli(cloud, "setup-buckets", "--warm-after-days", "90", "--cold-after-days", "60")
    assert bad.returncode == 2
    assert "--cold-after-days=60: must be later than --warm-after-days=90" in bad.stderr


def test_run_with_a_missing_variable_names_it(cloud):
    env = {k: v for k, v in cloud.env.items() if k != "ARCHIVE_BUCKET"}
    done = subprocess.run([sys.executable, "-m", "shared.cli", "run"], cwd=ROOT, capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if k != "ARCHIVE_BUCKET"}, **env,
                               "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: ARCHIVE_BUCKET: required (the long-term bucket's name)"
    assert cloud.emulator.requests == []


def test_status_prints_every_node_day_and_exits_1_while_one_is_missing(cloud):
    emu = cloud.emulator
    single = emu.add_instance(name="orders-cache", tags=TAGS, cache_mode="single")
    ha = emu.add_instance(name="session-store", tags=TAGS, cache_mode="ha", replicas=2)
    standby = ha.nodes[1]
    emu.faults.add("CreateRedislog", "error500", replication_id=standby.replication_id)
    env = {"API_MAX_RETRIES": "0", "COLLECT_POLL_SECONDS": "0.1"}
    cloud.run_collector(**env)
    for delivery in cloud.trigger(**env).drain():
        assert delivery.ok, delivery.traceback
    days = cloud.final_days(ha.instance_id)[-7:]
    shown = cli(cloud, "status", "--since", days[0], "--until", days[-1])
    assert shown.returncode == 1, shown.stderr
    rows = {line.split()[2]: line for line in shown.stdout.splitlines() if line.startswith(("orders", "session"))}
    assert set(rows) == {single.nodes[0].replication_ip, *(n.replication_ip for n in ha.nodes)}
    assert rows[ha.nodes[0].replication_ip].split()[-7:] == ["A"] * 7
    assert rows[standby.replication_ip].split()[-7:] == ["?"] * 7
    assert f"{3 * 7} node-days: 14 archived, 0 no-log, 0 failed, 7 missing" in shown.stderr

    long = cli(cloud, "status", "--instance", "session-store", "--long", "--since", days[-1], "--until", days[-1])
    lines = long.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("session-store") for line in lines)
    (missing,) = [line for line in lines if "\tmissing\t" in line]
    assert "DCS.5000" in missing, "the reason the node-day is missing"

    only_single = cli(cloud, "status", "--instance", single.instance_id, "--since", days[0], "--until", days[-1])
    assert only_single.returncode == 0 and "session-store" not in only_single.stdout
