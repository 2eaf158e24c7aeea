"""The fault matrix: the whole pipeline on the local cloud under each fault, re-driven where the design says the
system would (the platform's async retry, the collector's sweep, the next timer run), then the same invariants
checked after every case by `fault_checks.check_invariants`. The README's "Fault matrix" is the table of it."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from shared.jobs import iso
from shared.obs import Obs
from tests.integration.fault_checks import (
    FAULT_ENV,
    check_invariants,
    job_records,
    outcomes,
    read_queue,
    redrive,
    small_instances,
    start_mid_day,
)
from tests.integration.test_collector import QUEUE, TAGS
from tests.localcloud.dcs_scenario import OPS

ROOT = Path(__file__).resolve().parents[2]
MiB = 2**20
# A large file goes multipart in 5 MiB parts; uncompressed, so the parts fill as the download streams.
LARGE = {"PART_SIZE_MB": "5", "SINGLE_PUT_MAX_MB": "1", "ARCHIVE_COMPRESSION": "none"}



def collect_and_archive(cloud, trigger=None, **env):
    """The timer's collector run, then the OBS trigger for every job it wrote (and whatever those write)."""
    env = {**FAULT_ENV, **env}
    summary = cloud.run_collector(**env)
    trigger = trigger or cloud.trigger(**env)
    return summary, trigger, trigger.drain()


# --- DCS: 429 storms, 5xx, dropped connections ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["throttle", "error500", "drop"])
def test_a_storm_on_every_dcs_op_and_the_download_is_ridden_out_by_retries(cloud, kind):
    emu = cloud.emulator
    made = small_instances(cloud)
    for op in OPS:  # the first two calls of every operation fail, the link download included
        emu.faults.add(op, kind, times=2, retry_after=0)
    summary, trigger, _ = collect_and_archive(cloud)
    assert {c.op for c in emu.requests if c.fault == kind} == set(OPS), "the storm hit every operation"
    assert summary["collect_calls"]["failed"] == 0 and summary["jobs_enqueued"] == len(made)
    redrive(cloud, trigger)
    check_invariants(cloud, made, all_archived=True)


PERSISTENT = [
    # (fault, operation, what the parked job's reason must name)
    ("throttle", "ListRedislog", r"ListRedislog.*429"),
    ("throttle", "CreateRedislogDownloadLink", r"CreateRedislogDownloadLink.*429"),
    ("throttle", "Download", r"download answered 429"),
    ("error500", "ListRedislog", r"ListRedislog.*500 DCS\.5000"),
    ("error500", "CreateRedislogDownloadLink", r"CreateRedislogDownloadLink.*500 DCS\.5000"),
    ("drop", "ListRedislog", r"ListRedislog.*CONNECTION"),
    ("drop", "Download", r"download failed to start: ConnectionError"),
    ("truncate", "Download", r"download (truncated|broke)"),
    ("expired", "CreateRedislogDownloadLink", r"download answered 403 AccessDenied"),
]


@pytest.mark.parametrize("kind,op,cause", PERSISTENT, ids=[f"{k}-{o}" for k, o, _ in PERSISTENT])
def test_a_fault_outlasting_the_archivers_retries_parks_the_job_and_the_sweep_archives_it(cloud,
                                                                                         kind, op, cause):
    emu = cloud.emulator
    made = small_instances(cloud)
    cloud.run_collector(**FAULT_ENV)
    rule = emu.faults.add(op, kind, retry_after=0)  # for as long as the archiver's first attempt lasts
    trigger = cloud.trigger(**FAULT_ENV)
    assert set(outcomes(trigger.drain())) == {"retry"}
    assert rule.fired > 0
    report = check_invariants(cloud, made, cause=cause)
    assert report.missing and set(s for s, _ in report.missing.values()) == {"retry"}

    emu.faults.clear()  # the storm is over: the sweep re-drives the parked jobs once their time has come
    links_before = len(emu.calls("CreateRedislogDownloadLink"))
    redrive(cloud, trigger)
    report = check_invariants(cloud, made, all_archived=True)
    new_links = [c for c in emu.calls("CreateRedislogDownloadLink")[links_before:] if c.status == 200]
    assert len(new_links) == len(report.archived), "one link per file: the first attempt let none through"
    for records in job_records(cloud)["done"].values():
        assert all(r["attempts"] >= 1 for r in records), "the finished job is the re-driven one"


@pytest.mark.parametrize("kind,cause", [("throttle", r"429"), ("error500", r"DCS\.5000"), ("drop", r"CONNECTION")])
def test_a_fault_outlasting_the_collectors_retries_is_reported_and_the_next_run_archives(cloud,
                                                                                        kind, cause):
    emu = cloud.emulator
    made = small_instances(cloud)
    emu.faults.add("ListInstances", kind, retry_after=0)
    summary = cloud.run_collector(**FAULT_ENV)
    assert summary["matched"] == 0 and summary["error"]["stage"] == "discovery"
    assert summary["error"]["op"] == "ListInstances"
    assert re.search(cause, f"{summary['error']['status']} {summary['error']['code']}")
    assert emu.calls("CreateRedislog") == [] and cloud.queue_keys("pending") == []
    assert any('"event":"discovery_failed"' in line for line in cloud.log_lines())

    emu.faults.clear()
    emu.clock.advance(hours=1)  # the next timer run
    collect_and_archive(cloud)
    check_invariants(cloud, made, all_archived=True)


# --- the clock -----------------------------------------------------------------------------------------------

def test_a_clock_skewed_beyond_15_minutes_is_reported_enqueues_nothing_and_parks_the_job(cloud):
    emu = cloud.emulator
    made = small_instances(cloud)
    emu.signing_skew_seconds = 1000  # every signed call is refused: 401 APIGW.0303
    summary = cloud.run_collector(**FAULT_ENV)
    error = summary["error"]
    assert (error["stage"], error["status"], error["code"]) == ("discovery", 401, "APIGW.0303")
    assert "more than 15 minutes" in error["message"] and error["request_id"]
    assert summary["matched"] == 0 and cloud.queue_keys("pending") == []
    assert len(emu.calls("ListInstances")) == 1, "a 401 is not retried"
    assert any('"event":"discovery_failed"' in line and "APIGW.0303" in line for line in cloud.log_lines())

    # jobs enqueued before the clock drifted: the archiver parks them with the cause
    emu.signing_skew_seconds = 0
    cloud.run_collector(**FAULT_ENV)
    emu.signing_skew_seconds = 1000
    trigger = cloud.trigger(**FAULT_ENV)
    assert set(outcomes(trigger.drain())) == {"retry"}
    report = check_invariants(cloud, made, cause=r"ListRedislog.*401 APIGW\.0303.*15 minutes")
    assert len(report.missing) == 6 and cloud.archive_keys() == []

    emu.signing_skew_seconds = 0  # the clock is synchronised again: the sweep's re-drive finishes the jobs
    redrive(cloud, trigger)
    check_invariants(cloud, made, all_archived=True)


# --- the queue: duplicate, reordered, concurrent and malformed events --------------------------------------------

def test_duplicate_reordered_stale_and_concurrent_events_archive_each_file_once(cloud):
    emu = cloud.emulator
    made = small_instances(cloud, single=2, ha=1)
    cloud.run_collector(**FAULT_ENV)
    trigger = cloud.trigger(duplicate=True, reorder=True, **FAULT_ENV)
    stale = [trigger.event_for(key) for key in cloud.queue_keys("pending")]  # the first run's events, late
    emu.clock.advance(minutes=10)
    cloud.run_collector(**FAULT_ENV)  # a second run replaces every pending job before any event arrives

    deliveries = trigger.pump()  # each event twice, shuffled
    assert len(deliveries) == 2 * len(made) and all(d.ok for d in deliveries)
    assert sorted(outcomes(deliveries)) == ["already done"] * len(made) + ["done"] * len(made)
    links = len(emu.calls("CreateRedislogDownloadLink"))
    late = [trigger.deliver(event) for event in stale]
    assert outcomes(late) == ["already done"] * len(made)
    assert len(emu.calls("CreateRedislogDownloadLink")) == links, "a late event copies nothing"
    check_invariants(cloud, made, all_archived=True)

    # the next day, two invocations of every job at the same time: both may copy, one object per file stands
    emu.clock.advance(days=1)
    cloud.run_collector(**FAULT_ENV)
    events = [trigger.event_for(key) for key in cloud.queue_keys("pending")] * 2
    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        concurrent = list(pool.map(trigger.deliver, events))
    assert all(d.ok for d in concurrent), [d.traceback for d in concurrent if not d.ok]
    assert set(outcomes(concurrent)) <= {"done", "already done"}
    trigger.ignore_existing()
    redrive(cloud, trigger)
    check_invariants(cloud, made, all_archived=True)


def test_malformed_job_objects_are_dead_lettered_with_their_reason_and_the_good_jobs_go_on(cloud):
    made = small_instances(cloud, single=1, ha=1)
    cloud.run_collector(**FAULT_ENV)
    good = read_queue(cloud, f"{QUEUE}pending/{made[0].instance_id}.json")
    malformed = {
        "not-json": (b"{not json", r"not JSON"),
        "empty": (b"", r"not JSON"),
        "array": (b"[]", r"not a JSON object"),
        "future-schema": ({**good, "schema": 3}, r"schema 3 is not one of \(1, 2\)"),
        "climbing-id": ({**good, "instance_id": "../../other"}, r"is not an id"),
        "bad-time": ({**good, "requested_at": "yesterday"}, r"not ISO 8601"),
        "ids-not-a-list": ({**good, "entries_before": "abc"}, r"entries_before must be a list"),
    }
    for name, (content, _) in malformed.items():
        if isinstance(content, dict):
            cloud.obs.put_json(cloud.queue_bucket, f"{QUEUE}pending/{name}.json", content)
        else:
            cloud.obs.put_bytes(cloud.queue_bucket, f"{QUEUE}pending/{name}.json", content)
    cloud.obs.put_bytes(cloud.queue_bucket, f"{QUEUE}retry/parked-garbage.json", b"\x00\xff")

    trigger = cloud.trigger(reorder=True, **FAULT_ENV)
    deliveries = trigger.drain()
    assert all(d.ok for d in deliveries), "a malformed job never fails the invocation (no platform retry loop)"
    assert sorted(outcomes(deliveries)) == ["done"] * len(made) + ["failed"] * len(malformed)
    sweep = cloud.run_collector(action="sweep", **FAULT_ENV)["sweep"]
    assert sweep["malformed"] == 1

    dead = {read_queue(cloud, k)["source_key"]: read_queue(cloud, k) for k in cloud.queue_keys("failed")}
    assert set(dead) == {f"{QUEUE}pending/{n}.json" for n in malformed} | {f"{QUEUE}retry/parked-garbage.json"}
    for name, (_, cause) in malformed.items():
            assert re.search(cause, dead[f"{QUEUE}pending/{name}.json"]["reason"]), name
    assert dead[f"{QUEUE}retry/parked-garbage.json"]["reason"]
    assert cloud.queue_keys("retry") == []
    check_invariants(cloud, made, all_archived=True)


# --- DCS: the instance deleted between collect and archive -------------------------------------------------------

@pytest.mark.parametrize("when", ["before the archiver runs", "while its files are copied"])
def test_an_instance_deleted_after_its_collection_ends_its_job_in_failed(cloud, when):
    emu = cloud.emulator
    made = small_instances(cloud, single=1, ha=1)
    gone = made[1]
    cloud.run_collector(**FAULT_ENV)
    if when == "before the archiver runs":
        emu.delete_instance(gone.instance_id)
    else:  # deleted by the link call of its first file, the other instance's files go on
        emu.faults.add("CreateRedislogDownloadLink", "delete_instance", times=1, instance_id=gone.instance_id)
    trigger = cloud.trigger(**FAULT_ENV)
    trigger.drain()
    redrive(cloud, trigger)
    report = check_invariants(cloud, made, cause=r"instance deleted.*DCS\.3022")
    assert {stem.split("/")[1] for stem in report.missing} == {gone.instance_id}
    assert set(report.jobs["failed"]) == {gone.instance_id}

    emu.clock.advance(hours=1)  # the next timer run no longer finds it: nothing is enqueued for it
    calls = len(emu.requests)
    summary = cloud.run_collector(**FAULT_ENV)
    assert summary["matched"] == 1 and f"{QUEUE}pending/{gone.instance_id}.json" not in cloud.queue_keys("pending")
    assert not [c for c in emu.requests[calls:] if c.instance_id == gone.instance_id]
    trigger.drain()
    check_invariants(cloud, made, cause=r"instance deleted")


# --- SeaweedFS (OBS) stopped and restarted mid-copy ----------------------------------------------------------------

def _large_instance(cloud, size: int = 24 * MiB):
    emu = cloud.emulator
    start_mid_day(emu)
    today = emu.today()
    return emu.add_instance(name="big", tags=TAGS, cache_mode="single", log_size=size,
                            log_days=[today - timedelta(days=1), today])


STORE_DOWN = ["while the parts stream", "at the completion"]


@pytest.mark.parametrize("moment", STORE_DOWN)
def test_obs_killed_and_restarted_during_a_multipart_copy(cloud, monkeypatch, moment):
    seaweed = cloud.seaweed
    inst = _large_instance(cloud, 40 * MiB)
    env = {**FAULT_ENV, **LARGE, "COPY_MAX_ATTEMPTS": "1"}
    cloud.run_collector(**env)

    killed, outage = threading.Event(), {}

    def restart_later() -> None:
        time.sleep(2)
        seaweed.restart()
        outage["restarted"] = True

    def kill() -> None:
        outage["open_at_kill"] = cloud.open_uploads()
        seaweed.kill_server()  # SIGKILL: the store dies with connections open
        killed.set()
        threading.Thread(target=restart_later).start()

    upload_part, complete = Obs.upload_part, Obs.complete_multipart

    def held_upload_part(self, *args, **kwargs):
        etag = upload_part(self, *args, **kwargs)
        if not killed.is_set():
            kill()  # the first part is in: the store goes down with the download half read
        return etag

    def dying_complete(self, *args, **kwargs):
        kill()  # every part is in: the store goes down as the upload is completed
        return complete(self, *args, **kwargs)

    if moment == "while the parts stream":
        monkeypatch.setattr(Obs, "upload_part", held_upload_part)
    else:
        monkeypatch.setattr(Obs, "complete_multipart", dying_complete)
    trigger = cloud.trigger(**env)
    first: list = []
    runner = threading.Thread(target=lambda: first.extend(trigger.pump()), daemon=True)
    runner.start()
    runner.join(60)  # the copy takes a few seconds, its failure too
    assert not runner.is_alive(), "the archiver hung after the store went down"
    deadline = time.monotonic() + 60
    while not outage.get("restarted") and time.monotonic() < deadline:
        time.sleep(0.2)
    monkeypatch.setattr(Obs, "upload_part", upload_part)
    monkeypatch.setattr(Obs, "complete_multipart", complete)
    assert outage.get("open_at_kill"), "the store went down with a multipart upload in flight"
    assert outage.get("restarted")
    assert first and "done" not in outcomes(first)

    redrive(cloud, trigger, **env)
    left_open = cloud.open_uploads()
    report = check_invariants(cloud, [inst], all_archived=True, orphans=left_open)
    assert {key for key, _ in left_open} <= set(report.archived), "an upload left open is never completed"
    assert left_open == [], "the re-driven job aborted the upload whose abort failed while the store was down"


# --- the archiver killed with SIGKILL mid-copy ---------------------------------------------------------------------

def test_archiver_sigkilled_mid_copy_leaves_no_object_and_the_redelivery_archives(cloud, tmp_path):
    emu = cloud.emulator
    inst = _large_instance(cloud)
    env = {**FAULT_ENV, **LARGE}
    cloud.run_collector(**env)
    (job_key,) = cloud.queue_keys("pending")
    emu.faults.latency("Download", 0.5)  # a slow link, through the emulator

    stderr_path = tmp_path / "stderr"
    child_env = {**os.environ, **cloud.env, **env, "PYTHONPATH": str(ROOT), "FAULT_NOW": iso(emu.clock.now()),
                 "FAULT_JOB_KEY": job_key, "FAULT_PART_PAUSE": "30"}
    with open(stderr_path, "w") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "tests.integration.archiver_child"], cwd=ROOT,
                                 env=child_env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                 start_new_session=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True)
    reader.start()
    stdout, orphan = [], None
    deadline = time.monotonic() + 60
    try:
        while orphan is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert child.poll() is None, f"the child ended early: {stderr_path.read_text()[-2000:]}"
                continue
            stdout.append(line)
            if line.startswith("PART_UPLOADED 1 "):
                _, _, key, upload_id = line.split()
                orphan = (key, upload_id)
                os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None and orphan is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    reader.join(10)
    stdout.extend(iter_queue(lines))
    assert orphan is not None, f"no part was uploaded: {''.join(stdout)[-2000:]}"
    assert child.returncode == -signal.SIGKILL

    # what the crash left: the job still pending, an open upload with one part, nothing under the final key
    assert cloud.queue_keys("pending") == [job_key]
    assert cloud.open_uploads() == [orphan]
    assert cloud.archive_keys() == []

    emu.faults.clear()
    trigger = cloud.trigger(**env)  # the platform re-delivers the event of the crashed invocation
    assert outcomes(trigger.drain()) == ["done"]
    redrive(cloud, trigger, **LARGE)
    # the re-delivered job aborted the killed process's upload before copying the file again
    check_invariants(cloud, [inst], all_archived=True, outputs=stdout + [stderr_path.read_text()])
    assert any('"event":"open_upload_aborted"' in line and orphan[1] in line for line in cloud.log_lines())
    assert cloud.read_archived(orphan[0]).data == emu.log_bytes(inst.instance_id, inst.nodes[0].replication_ip,
                                                                cloud.yesterday())


def iter_queue(lines: queue.Queue) -> list[str]:
    out = []
    while True:
        try:
            out.append(lines.get_nowait())
        except queue.Empty:
            return out
