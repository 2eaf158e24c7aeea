"""Which listed run-log files to copy, decided without a link call or a download: pure functions.

A day's copy is final only if it was collected after the day ended. ListRedislog entries carry neither a size
nor a collection time, so the job remembers the entry ids listed just before its collection: the entries that
are not among them are this collection's, made after the job's `requested_at`, and those of days that ended
before that moment are final. An older entry's collection time is unknown (it may be a partial copy made
during its day), so it never stands as a final archive; its day is reported as `unproven` and is archived by
a collection whose window covers it (a wider QUERY_TIME, or a backfill run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Iterable

from shared.dcs import LogEntry
from shared.keys import FileKey, file_key, has_any, is_day

SUCCEED, FAILED = "succeed", "failed"
TERMINAL = (SUCCEED, FAILED)
FINAL, PARTIAL = "final", "partial"


@dataclass(frozen=True)
class Copy:
    entry: LogEntry
    key: str
    kind: str  # FINAL or PARTIAL
    obsolete: tuple[str, ...] = ()  # partial copies this final one replaces, deleted after it is in place


@dataclass(frozen=True)
class Note:
    entry: LogEntry
    reason: str
    key: str = ""


@dataclass
class Plan:
    copies: list[Copy] = field(default_factory=list)
    archived: list[Note] = field(default_factory=list)  # final copy already in the archive
    failed: list[Note] = field(default_factory=list)  # this collection's copy ended `failed`
    waiting: list[Note] = field(default_factory=list)  # this collection's copy is not finished
    skipped: list[Note] = field(default_factory=list)  # open day, unproven copy, unusable name

    @property
    def complete(self) -> bool:
        """Nothing left that a later attempt of this job could still do."""
        return not self.copies and not self.failed and not self.waiting


def log_day(moment: datetime, tz: tzinfo) -> str:
    """The day, in the zone in which DCS names its logs, of an instant."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(tz).date().isoformat()


def is_settled(entries: Iterable[LogEntry]) -> bool:
    """No entry is still being collected (any status other than succeed/failed counts as not ready)."""
    return all(e.status in TERMINAL for e in entries)


RETENTION_DAYS = 7  # DCS keeps run-log files for 7 days


def recent_marker(instance_prefix: str, today: date) -> str:
    """A listing marker that skips the instance's archive keys older than DCS's retention window: archive keys
    sort by day, so one LIST from here sees every day a job can still act on, however long the history."""
    return f"{instance_prefix}{(today - timedelta(days=RETENTION_DAYS + 1)).isoformat()}"


def plan_copies(entries: Iterable[LogEntry], *, entries_before: Iterable[str], collection_day: str,
                archived_keys: set[str], archive_prefix: str, instance_id: str, compression: str,
                open_day: bool) -> Plan:
    """Decide, per node and day, what to copy where. `collection_day` is the log day of the job's
    `requested_at`; `archived_keys` are the keys under the instance's archive prefix."""
    before = set(entries_before)
    by_file: dict[FileKey, list[LogEntry]] = {}
    plan = Plan()
    for entry in entries:
        if not is_day(entry.day) or not entry.file_name:
            plan.skipped.append(Note(entry, f"unusable entry: day {entry.day!r}, file {entry.file_name!r}"))
            continue
        key = file_key(archive_prefix, instance_id, entry.day, entry.group_name, entry.file_name)
        by_file.setdefault(key, []).append(entry)

    for key, copies in sorted(by_file.items(), key=lambda kv: kv[0].stem):
        day = copies[0].day
        newest = sorted((e for e in copies if e.id not in before), key=lambda e: e.id)
        done = has_any(archived_keys, key.final_variants())
        if done:
            plan.archived.append(Note(copies[-1], "final copy already archived", done))
            continue
        ok = [e for e in newest if e.status == SUCCEED]
        if day < collection_day:
            if ok:
                stale = tuple(k for k in key.partial_variants() if k in archived_keys)
                plan.copies.append(Copy(ok[-1], key.final(compression), FINAL, stale))
            elif any(e.status not in TERMINAL for e in newest):
                plan.waiting.append(Note(newest[-1], "collection not finished"))
            elif newest:
                plan.failed.append(Note(newest[-1], "collection ended failed"))
            else:
                plan.skipped.append(Note(copies[-1], "unproven: only copies from earlier collections, which "
                                                     "may be partial; a collection covering this day archives it"))
        elif day == collection_day and open_day and ok:
            plan.copies.append(Copy(ok[-1], key.partial(compression), PARTIAL))
        else:
            plan.skipped.append(Note(copies[-1], "day not finished when collected (open day)"))
    return plan
