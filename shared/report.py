"""The report: one self-contained HTML page of the archive, to look at rather than read.

    report = build(ledgers, days, today=..., generated_at=..., manifests=..., skipped=...)     pure: the model
    html = render(report)                                        Jinja2 and shared/templates/report.html.j2
    load(obs, ...) / publish(obs, config, ledgers, now)          the OBS shell: read, build, render, write

For each instance, a calendar grid of node x day in the state the node-day ledger gives it (archived, no-log,
failed, missing, or not expected), with the digest's notable events as a badge in the cell and every count in the
cell's title; per-instance totals; at the top the fleet: node-days by state, the missing and failed ones named
with their reasons, the most eventful node-days, and the instances skipped. Days older than the ledgers keep
(KEEP_DAYS) come from the daily manifests.

The page needs no network: inline CSS, the system's fonts, a few lines of inline JavaScript (a detail line that
follows the pointer or the keyboard focus; without it the title attributes say the same). The collector writes it
daily to `<ARCHIVE_PREFIX>_report/index.html` (`publish`), `cli report` to a local file, `cli report-link` prints
a presigned link to the bucket's copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from shared.digest import CATEGORIES, notable
from shared.ledger import ARCHIVED, FAILED, KEEP_DAYS, MISSING, NO_LOG, STATES, Ledger, LedgerStore, window
from shared.manifest import manifest_key, manifest_prefix
from shared.obs import Encryption, Obs

NONE = "none"  # a node-day that is not expected: the node did not exist then, or nothing is known of it
DEFAULT_DAYS = 30  # the default range: the last 30 finished days, from the first day anything is known
TEMPLATE = "report.html.j2"
TEMPLATES = Path(__file__).resolve().parent / "templates"
ATTENTION_LIMIT = 100  # lines of "needs attention" (runs of days of one node; the counts are always complete)
EVENTFUL_LIMIT = 10

# state -> (symbol in the cell, label, what it means); the symbol is there so that colour is never the only cue
STATE_INFO: dict[str, tuple[str, str, str]] = {
    ARCHIVED: ("\u2713", "archived", "a final copy is in the archive"),
    NO_LOG: ("\u2013", "no log", "proven empty: a collection made after the day ended listed no file"),
    MISSING: ("?", "missing", "not archived yet: a later run may still get it while DCS holds it (7 days)"),
    FAILED: ("\u2715", "failed", "lost: the day left DCS's 7-day window before it was archived"),
    NONE: ("", "not expected", "the node did not exist then, or nothing is recorded"),
}
CSS_CLASS = {ARCHIVED: "a", NO_LOG: "n", MISSING: "m", FAILED: "f", NONE: "x"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def report_key(archive_prefix: str) -> str:
    return f"{archive_prefix}_report/index.html"


def size(n: Optional[float]) -> str:
    """Bytes for people: 812 B, 31.4 KiB, 2.0 GiB."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def days_between(since: str, until: str) -> list[str]:
    first, last = date.fromisoformat(since), date.fromisoformat(until)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


# --- the model (pure) ----------------------------------------------------------------------------------------

@dataclass
class Day:
    """A column: one day."""

    day: str
    weekday: str
    dom: int
    month: str  # "Nov 2026" on the first column and on the 1st of a month, else ""
    weekend: bool
    week_start: bool  # a Monday (not the first column): a thin gap before it


@dataclass
class Cell:
    day: str
    state: str  # one of STATES, or NONE
    source: str  # "ledger", "manifest" or "" (nothing known)
    record: dict
    notable: dict[str, int]  # the digest's events of severity warning and above, by category
    badge: int  # their sum: the number shown in the cell
    critical: bool  # one of them is critical (out of memory, a crash)
    title: str

    @property
    def mark(self) -> str:
        return STATE_INFO[self.state][0]

    @property
    def css(self) -> str:
        return CSS_CLASS[self.state]


@dataclass
class NodeRow:
    ip: str
    label: str  # the IP, or "(single node)"
    group: str
    role: str
    removed_on: Optional[str]
    last_error: Optional[str]
    cells: list[Cell]


@dataclass
class Totals:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    bytes_in: int = 0
    bytes_out: int = 0
    lines: int = 0
    warning_lines: int = 0
    events: dict[str, int] = field(default_factory=dict)  # notable events by category
    digested: int = 0  # archived node-days that carry a digest

    @property
    def node_days(self) -> int:
        return sum(self.counts.values())

    @property
    def notable(self) -> int:
        return sum(self.events.values())

    def add(self, cell: Cell) -> None:
        if cell.state == NONE:
            return
        self.counts[cell.state] += 1
        if cell.state != ARCHIVED:
            return
        self.bytes_in += _int(cell.record.get("bytes_in"))
        self.bytes_out += _int(cell.record.get("bytes_out"))
        digest = cell.record.get("digest")
        if isinstance(digest, dict):
            self.digested += 1
            self.lines += _int(digest.get("lines"))
            self.warning_lines += _int((digest.get("levels") or {}).get("warning"))
        for category, n in cell.notable.items():
            self.events[category] = self.events.get(category, 0) + n

    def merge(self, other: Totals) -> None:
        for state, n in other.counts.items():
            self.counts[state] += n
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.lines += other.lines
        self.warning_lines += other.warning_lines
        self.digested += other.digested
        for category, n in other.events.items():
            self.events[category] = self.events.get(category, 0) + n

    def top_events(self) -> list[tuple[str, int]]:
        return sorted(self.events.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class InstanceView:
    instance_id: str
    name: str
    cache_mode: str
    rows: list[NodeRow]
    totals: Totals
    note: str = ""  # e.g. "from the manifests only: no ledger"

    @property
    def anchor(self) -> str:
        return f"i-{self.instance_id}"

    @property
    def attention(self) -> int:
        return self.totals.counts[MISSING] + self.totals.counts[FAILED]


@dataclass
class Problem:
    """Missing or failed node-days of one node, consecutive and for one reason: one line of "needs attention"."""

    instance: InstanceView
    node: str
    first: str
    last: str
    days: int
    state: str
    reason: str


def _runs(found: list[tuple[InstanceView, str, str, str, str]]) -> list[Problem]:
    """(instance, node, day, state, reason) node-days as runs of consecutive days with the same state and reason."""
    out: list[Problem] = []
    for inst, node, day, state, reason in sorted(found, key=lambda f: (f[0].instance_id, f[1], f[3], f[4], f[2])):
        prev = out[-1] if out else None
        if prev is not None and (prev.instance, prev.node, prev.state, prev.reason) == (inst, node, state, reason) \
                and (date.fromisoformat(prev.last) + timedelta(days=1)).isoformat() == day:
            prev.last, prev.days = day, prev.days + 1
        else:
            out.append(Problem(inst, node, day, day, 1, state, reason))
    return out


@dataclass
class Report:
    generated_at: str
    today: str
    since: str
    until: str
    location: str  # where the archive is, e.g. obs://bucket/prefix
    days: list[Day]
    instances: list[InstanceView]
    totals: Totals
    problems: list[Problem]
    problems_total: int  # node-days
    problem_runs: int  # lines before the cut
    eventful: list[tuple[InstanceView, NodeRow, Cell]]
    skipped: list[dict]
    skipped_source: str  # where the skipped list comes from ("" when none is known)
    unreadable: list[str]
    manifest_days: int  # days of the range drawn from manifests (beyond the ledgers)
    legend: list[tuple[str, str, str, str]] = field(default_factory=list)  # (css, symbol, label, meaning)

    @property
    def months(self) -> list[tuple[str, int]]:
        """(label, columns) of each month the range touches: the header row above the days."""
        spans: list[tuple[str, int]] = []
        for col in self.days:
            if col.month or not spans:
                spans.append((col.month, 1))
            else:
                spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        return spans

    @property
    def node_count(self) -> int:
        return sum(len(i.rows) for i in self.instances)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _notable(digest: Any) -> tuple[dict[str, int], bool]:
    """(notable events by category, whether one is critical) of a digest result; nothing for a missing one."""
    if not isinstance(digest, dict):
        return {}, False
    counts = {c: _int(n) for c, n in notable(digest).items()}
    return counts, any(CATEGORIES.get(c) == "critical" for c in counts)


def _columns(days: Sequence[str]) -> list[Day]:
    out = []
    for n, text in enumerate(days):
        d = date.fromisoformat(text)
        month = f"{MONTHS[d.month - 1]} {d.year}" if n == 0 or d.day == 1 else ""
        out.append(Day(text, WEEKDAYS[d.weekday()], d.day, month, d.weekday() >= 5, d.weekday() == 0 and n > 0))
    return out


def _from_manifest(entry: dict) -> dict:
    """A manifest's node entry in the ledger's record shape (bytes_in, bytes_out, ...)."""
    record = {"state": entry.get("state", MISSING)}
    for mine, theirs in (("key", "key"), ("bytes_in", "original_size"), ("bytes_out", "stored_size"),
                         ("sha256", "sha256"), ("digest", "digest"), ("reason", "reason")):
        if entry.get(theirs) is not None:
            record[mine] = entry[theirs]
    return record


def _manifest_view(manifests: Mapping[str, dict]) -> dict[str, dict[str, dict[str, tuple[dict, dict]]]]:
    """instance id -> node ip -> day -> (record, node entry), from the manifests, with the amendments of later
    manifests applied (a missing node-day archived or failed after its manifest was written)."""
    view: dict[str, dict[str, dict[str, tuple[dict, dict]]]] = {}

    def put(instance_id: str, entry: dict, day: str) -> None:
        ip = "" if entry.get("node") == "(single node)" else str(entry.get("node") or "")
        view.setdefault(instance_id, {}).setdefault(ip, {})[day] = (_from_manifest(entry), entry)

    for day in sorted(manifests):
        manifest = manifests[day]
        for inst in manifest.get("instances") or []:
            for entry in inst.get("nodes") or []:
                put(inst["instance_id"], {**entry, "instance_name": inst.get("instance_name", "")}, day)
            view.setdefault(inst["instance_id"], {})
    for day in sorted(manifests):  # amendments after the originals, oldest first
        for amended in manifests[day].get("amendments") or []:
            if amended.get("day") and amended.get("instance_id"):
                put(amended["instance_id"], amended, amended["day"])
    return view


def _title(node: NodeRow, day: Day, state: str, record: dict, notable_counts: dict[str, int], source: str) -> str:
    lines = [f"{node.label}{' ' + node.group if node.group else ''} \u00b7 {day.weekday} {day.day}",
             STATE_INFO[state][1] + (f" (from the {day.day} manifest)" if source == "manifest" else "")]
    if state == ARCHIVED:
        sizes = f"{size(_int(record.get('bytes_in')))} of log"
        if record.get("bytes_out") is not None:
            sizes += f", {size(_int(record.get('bytes_out')))} stored"
        lines.append(sizes)
        digest = record.get("digest")
        if isinstance(digest, dict):
            levels = digest.get("levels") or {}
            lines.append(f"{_int(digest.get('lines')):,} lines, {_int(levels.get('warning')):,} at warning level")
            if digest.get("first") or digest.get("last"):
                lines.append(f"{str(digest.get('first') or '?')[11:19]} \u2013 {str(digest.get('last') or '?')[11:19]}")
            events = {**(digest.get("events") or {})}
            if events:
                lines.append(", ".join(f"{c.replace('_', ' ')} {n}" for c, n in
                                       sorted(events.items(), key=lambda kv: (-_int(kv[1]), kv[0]))))
            elif not notable_counts:
                lines.append("no notable event")
        else:
            lines.append("no digest recorded")
    elif state in (MISSING, FAILED):
        reason = record.get("reason") or (f"last refusal: {node.last_error}" if node.last_error else "")
        if reason:
            lines.append(str(reason))
        if record.get("attempts"):
            lines.append(f"{record['attempts']} attempt(s)")
    elif state == NO_LOG and record.get("collected_at"):
        lines.append(f"collected at {record['collected_at']}")
    return "\n".join(lines)


def build(ledgers: Sequence[Ledger], days: Sequence[str], *, today: str, generated_at: str,
          manifests: Optional[Mapping[str, dict]] = None, ledger_from: Optional[str] = None,
          skipped: Sequence[dict] = (), skipped_source: str = "", location: str = "",
          unreadable: Sequence[str] = ()) -> Report:
    """The report's model. Days from `ledger_from` on come from the ledgers (the node-days they expect); earlier
    days from `manifests` (day -> manifest document) where there is one, else from a ledger's own record if it
    still holds one, else they are shown as not known."""
    manifests = manifests or {}
    if ledger_from is None:
        ledger_from = (date.fromisoformat(today) - timedelta(days=KEEP_DAYS - 1)).isoformat()
    columns = _columns(days)
    from_manifests = _manifest_view(manifests)
    by_id = {ledger.instance_id: ledger for ledger in ledgers}
    names = {inst["instance_id"]: inst.get("instance_name", "")
             for m in manifests.values() for inst in m.get("instances") or []}
    instances: list[InstanceView] = []
    for instance_id in sorted(set(by_id) | {i for i, nodes in from_manifests.items()
                                             if any(d in nodes_days for nodes_days in nodes.values()
                                                    for d in days)}):
        ledger = by_id.get(instance_id)
        old = from_manifests.get(instance_id, {})
        ips = sorted(set(ledger.nodes if ledger else ()) | {ip for ip, by_day in old.items()
                                                             if any(d in by_day for d in days)})
        rows, totals = [], Totals()
        for ip in ips:
            node = ledger.nodes.get(ip) if ledger else None
            entry = next((e for _, e in old.get(ip, {}).values()), {})
            row = NodeRow(ip=ip, label=ip or "(single node)", group=(node.group if node else "")
                          or entry.get("group", ""), role=(node.role if node else "") or entry.get("role", ""),
                          removed_on=node.removed_on if node else None, last_error=node.last_error if node else None,
                          cells=[])
            for col in columns:
                state, record, source = NONE, {}, ""
                if node is not None and col.day >= ledger_from:
                    if node.expects(col.day):
                        state, record, source = node.state(col.day), node.days.get(col.day, {}), "ledger"
                elif col.day in old.get(ip, {}):
                    record, _ = old[ip][col.day]
                    state, source = record.get("state", MISSING), "manifest"
                elif node is not None and col.day in node.days:
                    record = node.days[col.day]
                    state, source = record.get("state", MISSING), "ledger"
                if state not in STATE_INFO:
                    state = MISSING
                counts, critical = _notable(record.get("digest")) if state == ARCHIVED else ({}, False)
                cell = Cell(col.day, state, source, record, counts, sum(counts.values()), critical,
                            _title(row, col, state, record, counts, source))
                row.cells.append(cell)
                totals.add(cell)
            rows.append(row)
        name = (ledger.instance_name if ledger else "") or names.get(instance_id, "")
        note = "" if ledger else "from the daily manifests only: no ledger (the instance may be gone)"
        instances.append(InstanceView(instance_id, name, ledger.cache_mode if ledger else "", rows, totals, note))
    instances.sort(key=lambda i: ((i.name or "~").lower(), i.instance_id))

    fleet = Totals()
    found: list[tuple[InstanceView, str, str, str, str]] = []
    eventful = []
    for inst in instances:
        fleet.merge(inst.totals)
        for row in inst.rows:
            for cell in row.cells:
                if cell.state in (MISSING, FAILED):
                    reason = cell.record.get("reason") or (f"last refusal: {row.last_error}" if row.last_error
                                                           else "")
                    found.append((inst, row.label, cell.day, cell.state, str(reason)))
                if cell.badge:
                    eventful.append((inst, row, cell))
    problems = sorted(_runs(found), key=lambda p: (p.state != MISSING, p.first, p.instance.name, p.node))
    eventful.sort(key=lambda e: (-e[2].critical, -e[2].badge, e[2].day, e[0].name, e[1].label))
    legend = [(CSS_CLASS[s], *STATE_INFO[s]) for s in (ARCHIVED, NO_LOG, MISSING, FAILED, NONE)]
    return Report(generated_at=generated_at, today=today, since=days[0] if days else today,
                  until=days[-1] if days else today, location=location, days=columns, instances=instances,
                  totals=fleet, problems=problems[:ATTENTION_LIMIT], problems_total=len(found),
                  problem_runs=len(problems),
                  eventful=eventful[:EVENTFUL_LIMIT], skipped=list(skipped), skipped_source=skipped_source,
                  unreadable=list(unreadable), manifest_days=sum(1 for d in days if d < ledger_from and d in manifests),
                  legend=legend)


def default_range(ledgers: Iterable[Ledger], manifest_days: Iterable[str], today: date,
                  since: Optional[str] = None, until: Optional[str] = None) -> tuple[str, str]:
    """(since, until): until defaults to yesterday and never passes it (today is not over: no node-day of it is
    judged yet); since defaults to the first day anything is known of, at most DEFAULT_DAYS before until."""
    yesterday = (today - timedelta(days=1)).isoformat()
    until = min(until or yesterday, yesterday)
    if since is None:
        known = [n.expected_from for ledger in ledgers for n in ledger.nodes.values() if n.expected_from]
        known += list(manifest_days)
        earliest = min(known, default=window(today)[0])
        since = max(earliest, (date.fromisoformat(until) - timedelta(days=DEFAULT_DAYS - 1)).isoformat())
    if since > until:
        raise ValueError(f"the report's first day {since} is after its last {until} (the last is yesterday at "
                         "the latest)")
    return since, until


# --- rendering -----------------------------------------------------------------------------------------------

def render(report: Report) -> str:
    """The page (Jinja2, autoescaped: every name and reason comes from an API or a log)."""
    import jinja2  # imported here: the collector loads it only on the runs that write the report

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = size
    env.filters["num"] = lambda n: f"{n:,}"
    env.filters["pct"] = lambda n, total: f"{(100.0 * n / total) if total else 0:.4g}"
    env.filters["nice"] = lambda s: str(s).replace("_", " ")
    return env.get_template(TEMPLATE).render(r=report, states=STATE_INFO, css=CSS_CLASS, ARCHIVED=ARCHIVED,
                                             NO_LOG=NO_LOG, MISSING=MISSING, FAILED=FAILED)


# --- the shell: read the ledgers and manifests, write the page --------------------------------------------

@dataclass
class Loaded:
    report: Report
    html: str


def _json(obs: Obs, bucket: str, key: str) -> Optional[dict]:
    raw = obs.get_bytes(bucket, key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def load(archive: Obs, archive_bucket: str, archive_prefix: str, ledgers: LedgerStore, today: date,
         generated_at: str, since: Optional[str] = None, until: Optional[str] = None) -> Loaded:
    """Read what the report needs (every ledger; the manifests of days older than the ledgers keep, and the
    newest one for the skipped instances) and render it."""
    found, unreadable = [], []
    for instance_id, ledger, error in ledgers.read_all():
        if ledger is None:
            unreadable.append(f"{instance_id}: {error}")
        else:
            found.append(ledger)
    head = manifest_prefix(archive_prefix)
    available = sorted(o.key[len(head):-len(".json")] for o in archive.list(archive_bucket, head)
                       if o.key.endswith(".json"))
    since, until = default_range(found, available, today, since, until)
    ledger_from = (today - timedelta(days=KEEP_DAYS - 1)).isoformat()
    wanted: list[str] = []
    if since < ledger_from:  # the days beyond the ledgers, and the week after them (amendments of late changes)
        last_old = min(until, (date.fromisoformat(ledger_from) - timedelta(days=1)).isoformat())
        last = (date.fromisoformat(last_old) + timedelta(days=8)).isoformat()
        wanted = [d for d in available if since <= d <= last]
    manifests = {}
    for day in wanted:
        document = _json(archive, archive_bucket, manifest_key(archive_prefix, day))
        if document is not None:
            manifests[day] = document
    skipped, source = _skipped(archive, archive_bucket, archive_prefix, ledgers, available, manifests)
    report = build(found, days_between(since, until), today=today.isoformat(), generated_at=generated_at,
                   manifests=manifests, ledger_from=ledger_from, skipped=skipped, skipped_source=source,
                   location=f"obs://{archive_bucket}/{archive_prefix}", unreadable=unreadable)
    return Loaded(report, render(report))


def _skipped(archive: Obs, archive_bucket: str, archive_prefix: str, ledgers: LedgerStore, available: list[str],
             manifests: dict[str, dict]) -> tuple[list[dict], str]:
    """The instances skipped, from the newest manifest; before the first manifest, from the collector's newest
    run in the fleet record (the queue's fleet.json). ([], "") when neither exists."""
    if available:
        newest = available[-1]
        document = manifests.get(newest) or _json(archive, archive_bucket, manifest_key(archive_prefix, newest))
        if document is not None:
            return list(document.get("skipped") or []), f"the manifest of {newest}"
    fleet = _json(ledgers.obs, ledgers.bucket, f"{ledgers.prefix}fleet.json") or {}
    runs = fleet.get("runs") or {}
    if runs:
        run_day = max(runs)
        return ([{"instance_id": i, **s} for i, s in sorted((runs[run_day].get("skipped") or {}).items())],
                f"the collector's runs of {run_day}")
    return [], ""


def due(written_at: Optional[datetime], built_from: Optional[datetime], ledgers_modified: Optional[datetime],
        manifests_written: bool, today: str, tz: tzinfo, *, jobs_in_flight: bool = False) -> bool:
    """Whether the collector rewrites the report: when manifests were written, when there is none yet or it was
    written on an earlier day (the window moved), or when a ledger changed after the newest one the report was
    built from (`built_from`, kept in the report's metadata). Otherwise a sweep every 30 minutes costs one HEAD
    of the report and one LIST of the ledgers.

    `jobs_in_flight` (a collect run, which has just enqueued the day's jobs): only for manifests or a first
    report. The archivers change the ledgers within minutes, so a page drawn now would be out of date at once;
    the next sweep draws it once they have (and the collect run's time goes to collecting)."""
    if manifests_written or written_at is None:
        return True
    if jobs_in_flight:
        return False
    if written_at.astimezone(tz).date().isoformat() < today:
        return True
    return ledgers_modified is not None and (built_from is None or ledgers_modified > built_from)


def _moment(value: Optional[str]) -> Optional[datetime]:
    """A time from an ISO text or an HTTP date (Last-Modified); None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def publish(obs: Obs, config: Any, ledgers: LedgerStore, now: datetime, *, manifests_written: bool = False,
            force: bool = False, jobs_in_flight: bool = False) -> Optional[dict]:
    """Write the report to `<ARCHIVE_PREFIX>_report/index.html` if `due`; what was written, or None. `obs`
    reaches both buckets; `config` gives archive_bucket, archive_prefix, log_timezone and the encryption."""
    from shared.jobs import iso
    from shared.selection import log_day

    key = report_key(config.archive_prefix)
    today = log_day(now, config.log_timezone)
    current = None if force else obs.head(config.archive_bucket, key)
    written_at = _moment((current or {}).get("last-modified"))
    built_from = _moment((current or {}).get("ledgers-modified"))
    if not force and jobs_in_flight and not due(written_at, built_from, None, manifests_written, today,
                                                config.log_timezone, jobs_in_flight=True):
        return None  # a collect run does not look at the ledgers' times: no LIST of every ledger for nothing
    ledgers_modified = max((o.last_modified for o in obs.list(ledgers.bucket, f"{ledgers.prefix}ledger/")
                            if o.last_modified is not None), default=None)
    if not force and not due(written_at, built_from, ledgers_modified, manifests_written, today,
                             config.log_timezone, jobs_in_flight=jobs_in_flight):
        return None
    loaded = load(obs, config.archive_bucket, config.archive_prefix, ledgers, date.fromisoformat(today), iso(now))
    data = loaded.html.encode("utf-8")
    # encrypted as the archived objects and the manifests are (ARCHIVE_ENCRYPTION, ARCHIVE_KMS_KEY_ID)
    encryption = Encryption.of(getattr(config, "archive_encryption", "none"), getattr(config, "archive_kms_key_id", ""))
    obs.put_bytes(config.archive_bucket, key, data, content_type="text/html; charset=utf-8",
                  metadata={"report-since": loaded.report.since, "report-until": loaded.report.until,
                            "ledgers-modified": ledgers_modified.isoformat() if ledgers_modified else "none"},
                  encryption=encryption)
    totals = loaded.report.totals.counts
    return {"key": key, "bytes": len(data), "instances": len(loaded.report.instances),
            "since": loaded.report.since, "until": loaded.report.until,
            "node_days": {s.replace("-", "_"): n for s, n in totals.items()}}
