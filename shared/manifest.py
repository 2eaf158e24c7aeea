"""Daily manifests: what the archive holds for each day, chained by SHA-256, so a missing or altered object, or
a removed or edited manifest, is detectable years later (as CloudTrail and CTS digest files do).

    <archive prefix>_manifest/<yyyy-mm-dd>.json     one per day, written once, never rewritten
    <queue prefix>manifest-head.json                the newest manifest's day and SHA-256, and the node-days it
                                                    recorded as missing (a later manifest amends them)
    <queue prefix>fleet.json                        per collector run day: the instances matched and skipped

A day's manifest is written once every tagged instance's node-days of that day are settled in its ledger
(archived, no-log or failed), or once the day has left DCS's window (what is still missing then is recorded as
missing). It holds, per instance and node, the state with key, original size, SHA-256 and stored size for an
archived node-day, the reason for a failed one, the instances skipped that day and why, and the previous
manifest's SHA-256. A node-day that changes after its manifest was written (a missing day archived late) goes
into the next manifest's `amendments`: a manifest is never rewritten.

The collector writes them at the end of every run (collect or sweep): no human step. `verify` reads them back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable, Optional

from shared.ledger import ARCHIVED, FAILED, MISSING, NO_LOG, Ledger, LedgerStore, MalformedLedger, window
from shared.obs import Encryption, Obs

SCHEMA_VERSION = 1
FLEET_KEEP_DAYS = 40
MAX_DAYS_PER_RUN = 31  # manifests written by one run (a first deployment on a long-running archive catches up)


def manifest_prefix(archive_prefix: str) -> str:
    return f"{archive_prefix}_manifest/"


def manifest_key(archive_prefix: str, day: str) -> str:
    return f"{manifest_prefix(archive_prefix)}{day}.json"


def encode(document: dict) -> bytes:
    """The exact bytes a manifest is stored as: its SHA-256 is what the next one chains to."""
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the fleet: which instances a day must account for --------------------------------------------------

def record_fleet(fleet: dict, run_day: str, matched: Iterable[tuple[str, str]],
                 skipped: Iterable[tuple[str, str, str]]) -> dict:
    """Add a collect run's instances to the fleet record (merged with an earlier run of the same day)."""
    runs = dict(fleet.get("runs") or {})
    day = runs.get(run_day) or {"matched": {}, "skipped": {}}
    day = {"matched": {**day.get("matched", {}), **{i: n for i, n in matched}},
           "skipped": {**day.get("skipped", {}), **{i: {"name": n, "reason": r} for i, n, r in skipped}}}
    for instance_id in day["matched"]:
        day["skipped"].pop(instance_id, None)
    runs[run_day] = day
    horizon = (date.fromisoformat(run_day) - timedelta(days=FLEET_KEEP_DAYS)).isoformat()
    return {"schema": 1, "runs": {d: runs[d] for d in sorted(runs) if d >= horizon}}


def fleet_for(fleet: dict, day: str) -> tuple[dict[str, str], dict[str, dict]]:
    """The instances that had to account for `day`: those matched by the runs that collected it (the day after
    it and the next ones in DCS's window), and those skipped by them with the reason."""
    runs = fleet.get("runs") or {}
    first = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    last = (date.fromisoformat(day) + timedelta(days=7)).isoformat()
    matched: dict[str, str] = {}
    skipped: dict[str, dict] = {}
    for run_day in sorted(runs):
        if first <= run_day <= last:
            matched.update(runs[run_day].get("matched", {}))
            skipped.update(runs[run_day].get("skipped", {}))
    return matched, {i: s for i, s in skipped.items() if i not in matched}


# --- building a manifest (pure) -------------------------------------------------------------------------

def node_entry(node_ip: str, group: str, role: str, state: str, record: dict) -> dict:
    entry = {"node": node_ip or "(single node)", "group": group, "role": role, "state": state}
    if state == ARCHIVED:
        entry.update({"key": record.get("key"), "original_size": record.get("bytes_in"),
                      "sha256": record.get("sha256"), "stored_size": record.get("bytes_out")})
        if record.get("digest"):
            entry["digest"] = record["digest"]
    elif state in (FAILED, MISSING) and record.get("reason"):
        entry["reason"] = record["reason"]
    elif state == NO_LOG:
        entry["proof"] = {k: record[k] for k in ("job_id", "collected_at") if k in record}
    return entry


def day_ready(day: str, matched: dict[str, str], ledgers: dict[str, Optional[Ledger]], today: date) -> bool:
    """Every instance that had to account for the day has it settled, or the day has left DCS's window."""
    if day < window(today)[0]:
        return True
    for instance_id in matched:
        ledger = ledgers.get(instance_id)
        if ledger is None:
            return False
        if any(True for _ in ledger.node_days([day])) and not ledger.day_settled(day):
            return False
    return True


def build_manifest(day: str, matched: dict[str, str], skipped: dict[str, dict],
                   ledgers: dict[str, Optional[Ledger]], prev: Optional[dict], amendments: list[dict],
                   written_at: str) -> dict:
    instances = []
    totals = dict.fromkeys((ARCHIVED, NO_LOG, FAILED, MISSING), 0)
    for instance_id in sorted(matched):
        ledger = ledgers.get(instance_id)
        nodes = []
        if ledger is not None:
            for node, _, state in ledger.node_days([day]):
                nodes.append(node_entry(node.ip, node.group, node.role, state, node.days.get(day, {})))
                totals[state] += 1
        instances.append({"instance_id": instance_id,
                          "instance_name": (ledger.instance_name if ledger else "") or matched.get(instance_id, ""),
                          "nodes": nodes, **({} if ledger is not None else {"note": "no ledger: never archived"})})
    return {"schema": SCHEMA_VERSION, "day": day, "written_at": written_at,
            "previous": prev,  # {"day", "key", "sha256"} of the manifest before this one; None for the first
            "instances": instances,
            "skipped": [{"instance_id": i, **s} for i, s in sorted(skipped.items())],
            "amendments": amendments, "totals": totals}


def open_entries(manifest: dict) -> list[dict]:
    """The node-days a manifest recorded as missing: a later manifest amends them if they change."""
    return [{"day": manifest["day"], "instance_id": inst["instance_id"], "node": n["node"]}
            for inst in manifest["instances"] for n in inst["nodes"] if n["state"] == MISSING]


def amendments_for(open_list: list[dict], ledgers: dict[str, Optional[Ledger]]) -> tuple[list[dict], list[dict]]:
    """(amendments, still open): the earlier-missing node-days whose ledger state has changed since."""
    amended, still = [], []
    for item in open_list:
        ledger = ledgers.get(item["instance_id"])
        node = None
        if ledger is not None:
            node = ledger.nodes.get("" if item["node"] == "(single node)" else item["node"])
        state = node.state(item["day"]) if node is not None else MISSING
        if state == MISSING:
            still.append(item)
        else:
            amended.append({**item, "was": MISSING,
                            **node_entry(node.ip, node.group, node.role, state, node.days.get(item["day"], {}))})
    return amended, still


# --- the writer (shell) ---------------------------------------------------------------------------------

@dataclass
class ManifestWriter:
    archive: Obs
    archive_bucket: str
    archive_prefix: str
    queue: Obs
    queue_bucket: str
    queue_prefix: str
    ledgers: LedgerStore
    encryption: Optional[Encryption] = None  # ARCHIVE_ENCRYPTION: manifests are encrypted like the logs
    written: list[str] = field(default_factory=list)

    @property
    def head_key(self) -> str:
        return f"{self.queue_prefix}manifest-head.json"

    @property
    def fleet_key(self) -> str:
        return f"{self.queue_prefix}fleet.json"

    def _json(self, obs: Obs, bucket: str, key: str) -> Optional[dict]:
        raw = obs.get_bytes(bucket, key)
        return json.loads(raw) if raw else None

    def note_run(self, run_day: str, matched: Iterable[tuple[str, str]],
                 skipped: Iterable[tuple[str, str, str]]) -> None:
        fleet = self._json(self.queue, self.queue_bucket, self.fleet_key) or {}
        self.queue.put_json(self.queue_bucket, self.fleet_key, record_fleet(fleet, run_day, matched, skipped))

    def write_due(self, today: date, written_at: str, known: Optional[dict[str, Optional[Ledger]]] = None
                  ) -> list[str]:
        """Write every day's manifest that is due, oldest first, chained; returns the days written. `known`:
        ledgers this run has read already (the others of the instances concerned are read here)."""
        head = self._json(self.queue, self.queue_bucket, self.head_key)
        if head and head["day"] >= (today - timedelta(days=1)).isoformat():
            return []  # yesterday's is written: nothing is due before today ends
        fleet = self._json(self.queue, self.queue_bucket, self.fleet_key) or {}
        runs = sorted(fleet.get("runs") or {})
        if not runs:
            return []
        first_possible = (date.fromisoformat(runs[0]) - timedelta(days=7)).isoformat()
        day = date.fromisoformat(head["day"]) + timedelta(days=1) if head else date.fromisoformat(first_possible)
        ledgers = dict(known or {})
        open_list = list((head or {}).get("open", []))
        prev = {k: head[k] for k in ("day", "key", "sha256")} if head else None
        days: list[str] = []
        while day < today and len(days) < MAX_DAYS_PER_RUN:
            d = day.isoformat()
            matched, skipped = fleet_for(fleet, d)
            self._read_missing(ledgers, set(matched) | {i["instance_id"] for i in open_list})
            if not day_ready(d, matched, ledgers, today):
                break
            amended, open_list = amendments_for(open_list, ledgers)
            manifest = build_manifest(d, matched, skipped, ledgers, prev, amended, written_at)
            data = encode(manifest)
            key = manifest_key(self.archive_prefix, d)
            # encrypted as the archived objects are (ARCHIVE_ENCRYPTION; this writer is built without the Config)
            self.archive.put_bytes(self.archive_bucket, key, data, content_type="application/json",
                                   metadata={"sha256": sha256(data), "previous-sha256": (prev or {}).get("sha256")
                                             or "none"}, encryption=self.encryption)
            open_list += open_entries(manifest)
            prev = {"day": d, "key": key, "sha256": sha256(data)}
            self.queue.put_json(self.queue_bucket, self.head_key, {**prev, "open": open_list})
            days.append(d)
            day += timedelta(days=1)
        return days

    def _read_missing(self, ledgers: dict[str, Optional[Ledger]], instance_ids: set[str]) -> None:
        for instance_id in sorted(instance_ids - set(ledgers)):
            try:
                ledgers[instance_id] = self.ledgers.read(instance_id)
            except MalformedLedger:
                ledgers[instance_id] = None
