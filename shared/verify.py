"""`verify`: the manifests' chain, and every archived object they list, checked against what was recorded.

For each manifest in the range: it parses, its day follows the previous one (a day without a manifest is
reported), its `previous.sha256` is the SHA-256 of the previous manifest's bytes, and the newest one matches the
head the collector keeps in the queue bucket (so the last manifest cannot be edited or removed unnoticed either).
For each archived node-day: the object exists with the recorded stored size, and its `sha256`/`original-size`
metadata, where the copy could write them, match the manifest. `deep` reads every object back (streamed,
decompressed, in parallel, bounded memory) and re-hashes the original bytes.

The checks are pure functions over plain data (`check_chain`, `check_object`); `Verifier` is the shell.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable, Iterable, Optional

from shared.ledger import ARCHIVED
from shared.manifest import manifest_prefix, sha256
from shared.obs import Obs, ObsError
from shared.readback import ArchiveReader, NodeDay, ReadError

OK, BAD = "ok", "MISMATCH"


@dataclass
class Finding:
    day: str
    what: str  # "chain", "manifest", "object"
    subject: str  # the manifest key, or instance/node
    status: str  # OK or BAD
    detail: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    manifests: int = 0
    objects: int = 0
    bytes_read: int = 0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status != OK]

    def add(self, day: str, what: str, subject: str, problem: Optional[str]) -> None:
        self.findings.append(Finding(day, what, subject, BAD if problem else OK, problem or ""))


# --- the checks (pure) ---------------------------------------------------------------------------------

def check_chain(manifests: list[tuple[str, str, bytes]], head: Optional[dict], *, since: Optional[str],
                until: Optional[str]) -> list[tuple[str, str, Optional[str]]]:
    """(day, subject, problem or None) for each manifest (day, key, bytes) in day order, the days missing
    between them, and the newest against the head. `since`/`until` bound what is reported, not what is read:
    the first manifest in range is chained to the one before it."""
    out: list[tuple[str, str, Optional[str]]] = []
    prev: Optional[tuple[str, str]] = None  # (day, sha256)
    for day, key, data in manifests:
        in_range = (since is None or day >= since) and (until is None or day <= until)
        problem = None
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("day") != day:
            problem = "not a manifest of this day (unreadable, or its day field differs)"
        else:
            recorded = (doc.get("previous") or {}).get("sha256")
            if prev is not None:
                expected_day = (date.fromisoformat(prev[0]) + timedelta(days=1)).isoformat()
                gap_before = day != expected_day
                if gap_before and in_range:
                    gap = _days_between(expected_day, day)
                    out.append((expected_day, f"manifests for {gap}", f"missing: no manifest for {gap}"))
                named = (doc.get("previous") or {}).get("day")
                if gap_before and named is not None and expected_day <= named < day:
                    pass  # it chains to a manifest that is missing: reported once, as the missing day
                elif recorded != prev[1]:
                    problem = (f"chain broken: previous.sha256 {str(recorded)[:16]}... is not the SHA-256 of "
                               f"{prev[0]}'s manifest ({prev[1][:16]}...)")
            elif recorded is not None and in_range and since is None:
                problem = "chain broken: the first manifest names a previous one that is not there"
        if in_range:
            out.append((day, key, problem))
        prev = (day, sha256(data))
    if prev is not None and head is not None and (until is None or prev[0] <= until):
        if head.get("day") != prev[0] or head.get("sha256") != prev[1]:
            out.append((prev[0], "manifest head", f"the newest manifest ({prev[0]}, {prev[1][:16]}...) is not "
                       f"the one the collector wrote last ({head.get('day')}, {str(head.get('sha256'))[:16]}...)"))
    return out


def _days_between(first: str, after_last: str) -> str:
    last = (date.fromisoformat(after_last) - timedelta(days=1)).isoformat()
    return first if first == last else f"{first}..{last}"


def check_object(entry: dict, head: Optional[dict]) -> Optional[str]:
    """A manifest's archived node-day against the object's HEAD: present, stored size, checksum metadata."""
    if head is None:
        return f"object missing: {entry['key']}"
    size = head.get("content-length")
    if entry.get("stored_size") is not None and size is not None and int(size) != int(entry["stored_size"]):
        return f"stored size {size} is not the recorded {entry['stored_size']}: {entry['key']}"
    meta_sha = head.get("sha256")
    if meta_sha and entry.get("sha256") and meta_sha != entry["sha256"]:
        return f"sha256 metadata {meta_sha[:16]}... is not the recorded {entry['sha256'][:16]}...: {entry['key']}"
    meta_size = head.get("original-size")
    if meta_size and entry.get("original_size") is not None and int(meta_size) != int(entry["original_size"]):
        return f"original-size metadata {meta_size} is not the recorded {entry['original_size']}: {entry['key']}"
    return None


def archived_entries(doc: dict, instance: Optional[str]) -> Iterable[tuple[str, dict]]:
    for inst in doc.get("instances", []):
        if instance and instance not in (inst.get("instance_id"), inst.get("instance_name")):
            continue
        for node in inst.get("nodes", []):
            if node.get("state") == ARCHIVED:
                yield f"{inst.get('instance_name') or inst['instance_id']}/{node['node']}", node


# --- the shell -----------------------------------------------------------------------------------------

class Verifier:
    def __init__(self, archive: Obs, bucket: str, archive_prefix: str, queue: Obs, queue_bucket: str,
                 queue_prefix: str, *, workers: int = 8, on_object: Optional[Callable[[], None]] = None) -> None:
        self.archive, self.bucket, self.prefix = archive, bucket, archive_prefix
        self.queue, self.queue_bucket, self.queue_prefix = queue, queue_bucket, queue_prefix
        self.workers, self.on_object = workers, on_object
        self.reader = ArchiveReader(archive, bucket, archive_prefix, workers=workers)

    def manifest_days(self) -> list[tuple[str, str]]:
        head = manifest_prefix(self.prefix)
        return sorted((o.key[len(head):-len(".json")], o.key) for o in self.archive.list(self.bucket, head)
                      if o.key.endswith(".json"))

    def run(self, *, since: Optional[str] = None, until: Optional[str] = None, instance: Optional[str] = None,
            deep: bool = False) -> Report:
        report = Report()
        listed = [(d, k) for d, k in self.manifest_days() if until is None or d <= until]
        # the chain is read from the manifest before `since`, so the first in range is checked too
        start = max(0, next((i for i, (d, _) in enumerate(listed) if since is None or d >= since), len(listed)) - 1)
        manifests = []
        for day, key in listed[start:]:
            data = self.archive.get_bytes(self.bucket, key) or b""
            manifests.append((day, key, data))
        head_raw = self.queue.get_bytes(self.queue_bucket, f"{self.queue_prefix}manifest-head.json")
        head = json.loads(head_raw) if head_raw else None
        for day, subject, problem in check_chain(manifests, head, since=since, until=until):
            report.add(day, "chain", subject, problem)
        if since and until:
            present = {d for d, _, _ in manifests}
            day = date.fromisoformat(since)
            while day.isoformat() <= until and manifests and day.isoformat() < manifests[0][0]:
                if day.isoformat() not in present:
                    report.add(day.isoformat(), "chain", "manifest", f"missing: no manifest for {day.isoformat()}")
                day += timedelta(days=1)
        work = []
        for day, _, data in manifests:
            if (since and day < since) or (until and day > until):
                continue
            report.manifests += 1
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            work += [(day, subject, entry) for subject, entry in archived_entries(doc, instance)]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="verify") as pool:
            for day, subject, problem, nbytes in pool.map(lambda w: self._object(*w, deep=deep), work):
                report.objects += 1
                report.bytes_read += nbytes
                report.add(day, "object", subject, problem)
        return report

    def _object(self, day: str, subject: str, entry: dict, *, deep: bool) -> tuple[str, str, Optional[str], int]:
        try:
            head = self.archive.head(self.bucket, entry["key"])
            problem = check_object(entry, head)
            nbytes = 0
            if problem is None and deep:
                problem, nbytes = self._rehash(entry, int(head.get("content-length") or 0))
        except ObsError as err:
            problem, nbytes = f"could not read {entry['key']}: {err}", 0
        if self.on_object is not None:
            self.on_object()
        return day, subject, problem, nbytes

    def _rehash(self, entry: dict, stored_size: int) -> tuple[Optional[str], int]:
        key = entry["key"]
        row = NodeDay(instance_id="", day="", group="", file="", key=key, partial=False,
                      compressed=key.endswith(".gz"), stored_size=stored_size, node="")
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in self.reader.chunks(row):
                digest.update(chunk)
                size += len(chunk)
        except ReadError as exc:
            return f"content unreadable: {exc}", size
        if entry.get("sha256") and digest.hexdigest() != entry["sha256"]:
            return (f"content altered: SHA-256 of the original bytes is {digest.hexdigest()[:16]}..., recorded "
                    f"{entry['sha256'][:16]}...: {key}"), size
        if entry.get("original_size") is not None and size != int(entry["original_size"]):
            return f"content altered: {size} original bytes, recorded {entry['original_size']}: {key}", size
        return None, size


def render(report: Report, *, show_ok: bool = False) -> str:
    lines = [f"{'day':<10}  {'check':<7} {'status':<8} subject / detail"]
    for f in sorted(report.findings, key=lambda f: (f.day, f.what != "chain", f.subject)):
        if f.status == OK and not show_ok:
            continue
        lines.append(f"{f.day:<10}  {f.what:<7} {f.status:<8} {f.subject}" + (f"  {f.detail}" if f.detail else ""))
    lines.append(f"{report.manifests} manifest(s), {report.objects} object(s) checked"
                 + (f", {report.bytes_read} bytes re-read" if report.bytes_read else "")
                 + f": {len(report.problems)} problem(s)")
    return "\n".join(lines)
