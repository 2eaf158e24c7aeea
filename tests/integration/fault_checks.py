"""Shared by the fault matrix: a small scenario on the local cloud, the re-drive the design prescribes, and the one
check of the invariants every fault must leave intact.

The invariants (README, "Fault matrix"):
- every log file the emulator holds for a finished day of a tagged instance is archived byte-exact, or its
  instance's job is in `retry/` or `failed/` with a readable reason that names the cause;
- one archive object per node and day (no second key, no `.partial` beside a final one), none for anything else;
- no job left in `pending/` once the platform and the sweep have had their turn;
- no open multipart upload (except, named by the test, the one a SIGKILLed process could not abort);
- no credential value, and no presigned link's signature, in any log line, queue object or process output.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Optional

from shared.keys import COMPRESSED_SUFFIX, PARTIAL_SUFFIX, file_key
from tests.integration.test_archiver import ARCHIVE
from tests.integration.test_collector import QUEUE, TAGS
from tests.localcloud.pipeline import start_mid_day

# Short re-drive delays (the sweep finds a parked job due after one clock step) and few retries, so each fault
# case runs in seconds; QUERY_TIME=3 covers every finished day the small scenarios hold.
FAULT_ENV = {
    "QUERY_TIME": "3",
    "JOB_RETRY_DELAY_SECONDS": "60",
    "API_MAX_RETRIES": "3",
    "COPY_MAX_ATTEMPTS": "2",
    # the SDK-hook retries wait milliseconds instead of seconds (2-5 s after a 429 on a GET): what these cases
    # prove is how many calls are retried and what the run ends with; the wait lengths are unit-tested
    "API_RETRY_WAIT_SCALE": "0.01",
}
REDRIVE_STEP = timedelta(minutes=30)  # > the longest retry delay the cases reach (60 s x 2^attempts)
# What a presigned link's query carries (V2 and V4 signatures); never logged.
LINK_SIGNATURE = re.compile(r"(?i)(?:[?&](?:Signature|X-Amz-Signature|X-Amz-Credential|AccessKeyId)=)")


class KnownBug(AssertionError):
    """An invariant broken by a bug in shared/ (listed in the README's table): the test marks it xfail with
    `raises=KnownBug`, so any other failure still fails the test."""


def ledger_record(cloud, instance_id: str, ip: str, day: str) -> dict:
    """The node-day's record in the instance's ledger ({} when there is none)."""
    raw = cloud.obs.get_bytes(cloud.queue_bucket, f"{QUEUE}ledger/{instance_id}.json")
    if raw is None:
        return {}
    return json.loads(raw)["nodes"].get(ip, {}).get("days", {}).get(day, {})


def known_bug(condition: bool, message: str) -> None:
    if not condition:
        raise KnownBug(message)


def small_instances(cloud, *, single: int = 1, ha: int = 1, log_size: int = 2048, **extra) -> list:
    """Tagged instances with two finished days and today each (today is never final), plus one untagged
    instance that must never reach the archive."""
    emu = cloud.emulator
    start_mid_day(emu)
    today = emu.today()
    days = [today - timedelta(days=2), today - timedelta(days=1), today]
    made = [emu.add_instance(name=f"single-{n}", tags=TAGS, cache_mode="single", log_days=days,
                             log_size=log_size, **extra) for n in range(single)]
    made += [emu.add_instance(name=f"ha-{n}", tags=TAGS, cache_mode="ha", replicas=2, log_days=days,
                              log_size=log_size, **extra) for n in range(ha)]
    emu.add_instance(name="untagged", tags={"team": "x"}, cache_mode="single", log_days=days, log_size=log_size)
    return made


def redrive(cloud, trigger, *, rounds: int = 5, **env: str) -> int:
    """What the platform and the design do after a failure, until the queue is quiet: the platform's async
    retry of failed invocations, then the collector's sweep (clock advanced past the retry delay) and the
    trigger for the jobs it writes back to `pending/`. Returns the rounds used."""
    env = {**FAULT_ENV, **env}
    for n in range(1, rounds + 1):
        trigger.retry_failed()
        trigger.drain()
        if not cloud.queue_keys("retry") and not cloud.queue_keys("pending"):
            return n
        cloud.emulator.clock.advance(seconds=REDRIVE_STEP.total_seconds())
        cloud.run_collector(action="sweep", **env)
        trigger.drain()
    return rounds


def read_queue(cloud, key: str) -> dict:
    return json.loads(cloud.obs.get_bytes(cloud.queue_bucket, key))


def job_records(cloud) -> dict[str, dict[str, list[dict]]]:
    """{state: {instance_id: [record, ...]}} for every job object in the queue."""
    out: dict[str, dict[str, list[dict]]] = {}
    for state in ("pending", "retry", "done", "failed"):
        for key in cloud.queue_keys(state):
            record = read_queue(cloud, key)
            instance_id = record.get("instance_id") or key[len(f"{QUEUE}{state}/"):].split("/")[0]
            out.setdefault(state, {}).setdefault(instance_id, []).append({**record, "_key": key})
    return out


def reason_of(state: str, record: dict) -> str:
    return (record.get("reason") if state == "failed" else record.get("last_error")) or ""


@dataclass
class Report:
    archived: dict[str, bytes] = field(default_factory=dict)  # key -> original bytes
    missing: dict[str, tuple[str, str]] = field(default_factory=dict)  # expected key -> (job state, reason)
    jobs: dict[str, dict[str, list[dict]]] = field(default_factory=dict)


def expected_files(cloud, instances: Iterable) -> dict[str, tuple[str, str, str]]:
    """{key stem: (instance_id, replication_ip, day)} for every node and finished day of the instances."""
    out = {}
    for inst in instances:
        for node in inst.nodes:
            for day in cloud.final_days(inst.instance_id):
                stem = file_key(ARCHIVE, inst.instance_id, day, node.group_name,
                                f"redis_{node.replication_ip}_{day}.log").stem
                out[stem] = (inst.instance_id, node.replication_ip, day)
    return out


def _stem(key: str) -> str:
    key = key.removesuffix(COMPRESSED_SUFFIX)
    return key.removesuffix(PARTIAL_SUFFIX)


def check_invariants(cloud, instances: Iterable, *, cause: Optional[str] = None, all_archived: bool = False,
                     orphans: Iterable[tuple[str, str]] = (), outputs: Iterable[str] = ()) -> Report:
    """Assert the invariants above for the tagged `instances`; `cause` is a regex the reason of every job that
    left a file unarchived must match; `orphans` are the (key, upload id) a killed process left open."""
    instances = list(instances)
    emu = cloud.emulator
    report = Report(jobs=job_records(cloud))
    expected = expected_files(cloud, instances)
    assert expected, "the scenario holds finished days"

    keys = cloud.archive_keys()
    by_stem: dict[str, list[str]] = {}
    for key in keys:
        by_stem.setdefault(_stem(key), []).append(key)
    strays = sorted(set(by_stem) - set(expected))
    assert not strays, f"archive objects for no finished day of a tagged node: {strays}"
    doubles = {stem: found for stem, found in by_stem.items() if len(found) > 1}
    assert not doubles, f"more than one object for one node and day (partial beside final?): {doubles}"

    for stem, (instance_id, ip, day) in sorted(expected.items()):
        found = by_stem.get(stem)
        if found:
            (key,) = found
            assert PARTIAL_SUFFIX not in key[len(stem):], f"{key}: a partial copy stands for a finished day"
            got = cloud.read_archived(key)
            original = emu.log_bytes(instance_id, ip, day)
            assert got.data == original, f"{key}: archived bytes differ from the node's log"
            # a single PUT carries its checksum in metadata; a multipart copy's is in the ledger (OBS cannot copy
            # an Archive-class object onto itself to add it afterwards)
            recorded = got.metadata.get("sha256") or ledger_record(cloud, instance_id, ip, day).get("sha256")
            assert recorded == hashlib.sha256(original).hexdigest(), key
            assert got.metadata.get("copy") == "final", key
            report.archived[key] = original
            continue
        parked = [(state, reason_of(state, r)) for state in ("retry", "failed")
                  for r in report.jobs.get(state, {}).get(instance_id, [])]
        assert parked, f"{stem}: not archived, and no job of {instance_id} in retry/ or failed/ " \
                       f"(jobs: { {s: list(j) for s, j in report.jobs.items()} })"
        state, reason = parked[0]
        assert isinstance(reason, str) and reason.strip(), f"{stem}: job in {state}/ without a reason"
        if cause:
            assert re.search(cause, reason), f"{stem}: reason {reason!r} does not name the cause /{cause}/"
        report.missing[stem] = (state, reason)
    if all_archived:
        assert not report.missing, f"files left unarchived: {report.missing}"

    assert cloud.queue_keys("pending") == [], "a job is left in pending/ after the re-drive"
    open_uploads = sorted(cloud.open_uploads())
    assert open_uploads == sorted(orphans), f"open multipart uploads: {open_uploads}"

    secrets = {cloud.seaweed.secret_key, emu.sk}
    queue_text = [json.dumps(r) for jobs in report.jobs.values() for rs in jobs.values() for r in rs]
    texts = cloud.log_lines() + list(outputs) + queue_text
    assert texts, "something was logged"
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a credential value in: {text[:300]}"
        assert not LINK_SIGNATURE.search(text), f"a presigned link's signature in: {text[:300]}"
    return report


def outcomes(deliveries) -> list[str]:
    return [job.get("outcome") for d in deliveries if d.ok for job in d.result["jobs"]]

