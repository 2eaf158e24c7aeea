"""The digest of one node's run log of one day: what happened, counted while the bytes stream through the copy.

    d = Digest("2024-08-07")
    for chunk in stream: d.feed(chunk)      # any chunk boundaries; a line may straddle two chunks
    d.result()       -> {"v": 1, "day", "lines", "levels": {...}, "events": {...}, "first", "last"}
    d.to_metadata()  -> "v1 l=402 lv=0/0/398/4 t=2024-08-07T00:00:01.123/... e=master_lost:1,restart:1"
    notable(d.result()) -> {"master_lost": 1, "restart": 1}     (the events of severity warning and above)

A Redis log line is `<pid>:<role> <dd Mon [yyyy] hh:mm:ss.mmm> <level> <message>` (src/server.c, serverLogRaw);
Redis 4.0 writes no year, so the year comes from the file's day. Crash reports are raw lines without the prefix,
and a signal handler writes `<pid>:signal-handler (<unix time>) <message>` (src/server.c, serverLogFromHandler).

Speed: the copy runs at 100+ MiB/s and most lines are unremarkable. The rows of PATTERNS become ONE compiled
regex, anchored on the `.mmm <level> ` that ends every line's head, whose only group captures the level and, when
the message is a known one, its fixed text. `findall` and `Counter` then do the work in C: a line that matches
nothing costs a few regex steps and one cached one-byte object, no Python code. The variable parts of a message are
checked with lookaheads, never captured, so the captured texts are few and each is looked up once per chunk.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Optional

VERSION = 1
LEVELS = {b".": "debug", b"-": "verbose", b"*": "notice", b"#": "warning"}  # src/server.c serverLogRaw: ".-*#"
LEVEL_ORDER = ("debug", "verbose", "notice", "warning")
SEVERITIES = ("notice", "warning", "critical")
MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
MAX_CARRY = 1 << 20  # an unfinished line longer than this is digested as it is (a line is rarely > 64 KiB)


@dataclass(frozen=True)
class Pattern:
    """One Redis message worth counting: `text` is the fixed text that starts the message (what the scan captures),
    `then` an optional regex checked right after it without being captured (the rest of the message, which holds
    values); a `raw` pattern starts a line without the usual head."""

    category: str
    severity: str  # notice, warning or critical
    text: str
    then: str = ""
    raw: bool = False


# THE table: one row per message, several rows may count into one category. Texts as Redis writes them, with the
# source file that logs them (redis/redis, read at tags 4.0.14, 5.0.0, 6.2.0, 7.0.0, 7.2.0 and 7.4.0; cluster.c
# is cluster_legacy.c from 7.4). Redis 4.0 says "slave" where 5.0+ says "replica", and the level of some messages
# changed between versions (noted), so a row matches the text whatever the level.
PATTERNS: tuple[Pattern, ...] = (
    # --- replication
    # src/networking.c freeClient: '#' up to 7.0, '*' from 7.2
    Pattern("master_lost", "warning", "Connection with master lost."),
    # src/replication.c replicationCron
    Pattern("master_timeout", "warning", "MASTER timeout: no data nor PING received"),
    # src/replication.c connectWithMaster
    Pattern("master_unreachable", "warning", "Unable to connect to MASTER: "),
    # src/networking.c freeClient: "Connection with slave %s lost." (4.0), "... replica %s lost." (5.0+)
    Pattern("replica_lost", "notice", "Connection with slave ", r"[^\n]* lost\."),
    Pattern("replica_lost", "notice", "Connection with replica ", r"[^\n]* lost\."),
    # src/replication.c slaveTryPartialResynchronization (the replica's side)
    Pattern("full_resync", "warning", "Full resync from master: "),
    # src/replication.c masterTryPartialResynchronization (the master's side): "slave" (4.0), "replica" (5.0+)
    Pattern("full_resync", "warning", "Full resync requested by slave "),
    Pattern("full_resync", "warning", "Full resync requested by replica "),
    # src/replication.c slaveTryPartialResynchronization (the replica's side)
    Pattern("partial_resync_refused", "warning", "Partial resynchronization not possible (no cached master)"),
    # src/replication.c masterTryPartialResynchronization: replication id mismatch, or offset out of reach
    Pattern("partial_resync_refused", "warning", "Partial resynchronization not accepted: "),
    # src/replication.c masterTryPartialResynchronization: "... with slave %s for lack of backlog" (4.0), "replica"
    Pattern("partial_resync_refused", "warning", "Unable to partial resync with slave "),
    Pattern("partial_resync_refused", "warning", "Unable to partial resync with replica "),
    # src/replication.c replicationCron: "timedout slave: %s" (4.0), "timedout replica: %s" (5.0-6.2),
    # "timedout replica (streaming sync): %s" / "(full sync): %s" (7.0+)
    Pattern("replica_timeout", "warning", "Disconnecting timedout slave"),
    Pattern("replica_timeout", "warning", "Disconnecting timedout replica"),
    # src/replication.c readSyncBulkPayload: "MASTER <-> SLAVE sync" (4.0), "MASTER <-> REPLICA sync" (5.0+)
    Pattern("sync_finished", "notice", "MASTER <-> SLAVE sync: Finished with success"),
    Pattern("sync_finished", "notice", "MASTER <-> REPLICA sync: Finished with success"),
    # --- failover and role changes
    # src/replication.c replicaofCommand ("user request from", REPLICAOF NO ONE), failover ("failover request
    # from", FAILOVER, 6.2+)
    Pattern("role_change", "warning", "MASTER MODE enabled ("),
    # src/replication.c replicaofCommand: "SLAVE OF %s:%d enabled (user request ..." (4.0), "REPLICAOF ..." (5.0+)
    Pattern("role_change", "warning", "SLAVE OF ", r"\S+ enabled \("),
    Pattern("role_change", "warning", "REPLICAOF ", r"\S+ enabled \("),
    # src/cluster.c clusterUpdateSlotsConfigWith: '#' up to 7.0, '*' from 7.2
    Pattern("role_change", "warning", "Configuration change detected. Reconfiguring myself as a replica of "),
    # src/cluster.c clusterUpdateSlotsConfigWith (7.0+)
    Pattern("role_change", "warning", "I'm a sub-replica! Reconfiguring myself as a replica of grandmaster "),
    # src/cluster.c clusterHandleSlaveFailover
    Pattern("failover", "warning", "Failover election won: I'm the new master."),
    # src/cluster.c manualFailoverCheckTimeout
    Pattern("failover_timeout", "warning", "Manual failover timed out."),
    # --- cluster state
    # src/cluster.c clusterUpdateState: '#' for both up to 7.0; "ok" is '*' from 7.2
    Pattern("cluster_fail", "warning", "Cluster state changed: fail"),
    Pattern("cluster_ok", "notice", "Cluster state changed: ok"),
    # src/cluster.c markNodeAsFailingIfNeeded: "node %.40s as failing" (7.2+: "node %.40s (%s) as failing")
    Pattern("node_failing", "warning", "Marking node ", r"[^\n]* as failing \(quorum reached\)\."),
    # --- RDB
    # src/rdb.c backgroundSaveDoneHandlerDisk
    Pattern("rdb_error", "warning", "Background saving error"),
    Pattern("rdb_error", "warning", "Background saving terminated by signal "),
    # src/rdb.c rdbSaveBackground, rdbSaveToSlavesSockets
    Pattern("rdb_error", "warning", "Can't save in background: fork: "),
    # src/rdb.c rdbSave: "Write error saving DB on disk: %s" (4.0-7.0), "... while saving DB to the disk(%s)" (7.2+)
    Pattern("rdb_error", "warning", "Write error saving DB on disk: "),
    Pattern("rdb_error", "warning", "Write error while saving DB to the disk"),
    # src/rdb.c rdbSave: "Failed opening the RDB file %s" (4.0-6.2), "Failed opening the temp RDB file %s" (7.0+)
    Pattern("rdb_error", "warning", "Failed opening the RDB file "),
    Pattern("rdb_error", "warning", "Failed opening the temp RDB file "),
    # --- AOF
    # src/aof.c backgroundRewriteDoneHandler
    Pattern("aof_error", "warning", "Background AOF rewrite terminated with error"),
    Pattern("aof_error", "warning", "Background AOF rewrite terminated by signal "),
    # src/aof.c flushAppendOnlyFile
    Pattern("aof_error", "warning", "Error writing to the AOF file: "),
    Pattern("aof_error", "warning", "Short write while writing to the AOF file"),
    # src/aof.c rewriteAppendOnlyFileBackground
    Pattern("aof_error", "warning", "Can't rewrite append only file in background: fork: "),
    # src/aof.c flushAppendOnlyFile ('*' in every version)
    Pattern("aof_slow_fsync", "warning", "Asynchronous AOF fsync is taking too long (disk is busy?)"),
    # --- memory and clients
    # src/server.c redisOutOfMemoryHandler (a crash report follows)
    Pattern("oom", "critical", "Out Of Memory allocating "),
    # src/networking.c: "Client %s scheduled to be closed ASAP for overcoming of output buffer limits." (every
    # version), "Client %s closed for overcoming of output buffer limits." (7.0+)
    Pattern("client_output_buffer", "warning", "Client ", r"[^\n]* for overcoming of output buffer limits\."),
    # src/networking.c processInputBuffer / readQueryFromClient
    Pattern("client_query_buffer", "warning", "Closing client that reached max query buffer length"),
    # --- lifecycle
    # src/server.c main: '#' up to 7.0, '*' from 7.2
    Pattern("restart", "warning", "oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"),
    # src/server.c prepareForShutdown (the SHUTDOWN command): '#' up to 7.0, '*' from 7.2
    Pattern("shutdown", "notice", "User requested shutdown..."),
    # src/server.c sigShutdownHandler, written by serverLogFromHandler: `<pid>:signal-handler (<time>) <message>`
    Pattern("shutdown", "notice", "Received SIGTERM scheduling shutdown...", raw=True),
    Pattern("shutdown", "notice", "Received SIGINT scheduling shutdown...", raw=True),
    # src/debug.c bugReportStart: the raw line that opens every crash report, once a report. The report's other
    # lines ("Redis %s crashed by signal: %d", "=== ASSERTION FAILED ===", "Guru Meditation: ...") describe the
    # same crash and are not counted again.
    Pattern("crash", "critical", "=== REDIS BUG REPORT START", raw=True),
    # --- scripts and security
    # src/scripting.c luaMaskCountHook "Lua slow script detected: ..." (4.0-6.2); src/script.c "Slow script
    # detected: ..." (7.0+)
    Pattern("slow_script", "warning", "Lua slow script detected: still in execution after "),
    Pattern("slow_script", "warning", "Slow script detected: still in execution after "),
    # src/networking.c securityWarningCommand
    Pattern("security_attack", "warning", "Possible SECURITY ATTACK detected."),
)

CATEGORIES: dict[str, str] = {}  # category -> severity
for _p in PATTERNS:
    CATEGORIES.setdefault(_p.category, _p.severity)
_BY_TEXT = {p.text.encode(): p for p in PATTERNS}
assert len(_BY_TEXT) == len(PATTERNS), "two rows with one text"
assert all(CATEGORIES[p.category] == p.severity for p in PATTERNS), "a category with two severities"
assert set(CATEGORIES.values()) <= set(SEVERITIES)


def _trie_regex(patterns: list[Pattern]) -> str:
    """The texts as one regex, factored by common prefixes: the engine then tries a handful of first characters
    at the start of each message instead of every text in turn (measured ~1.3x faster than a flat alternation)."""
    root: dict = {}
    for p in patterns:
        node = root
        for char in p.text:
            node = node.setdefault(char, {})
        node[""] = f"(?={p.then})" if p.then else ""  # "" marks a text's end; no key is empty otherwise

    def build(node: dict) -> str:
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if "" in node:
            branches.append(node[""])  # last: a longer text wins over its own prefix
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    return build(root)


# `.mmm L ` ends the head of every prefixed line; the one group is the level alone, or the level, a space and a
# known message's text. Anchored on a literal, the scan stays on the regex engine's fast path. The text is an
# alternative to the empty string, not an optional group: `(?:...)?` compiles to a REPEAT that allocates a context
# at every line, and the scan ran ~11% slower with it (tests/bench/digest.py, Python 3.11).
_SCAN = re.compile(rf"\.\d\d\d ([-.*#](?: {_trie_regex([p for p in PATTERNS if not p.raw])}|))".encode())
# Raw patterns start a line, or follow a signal handler's head. Searched only in chunks that have lines without a
# head (rare): a second anchor in _SCAN would halve its speed.
_RAW_SCAN = re.compile(rf"(?:\n|:signal-handler \(\d+\) )({_trie_regex([p for p in PATTERNS if p.raw])})".encode())
# `<pid>:<role> dd Mon [yyyy ]hh:mm:ss.mmm <level> `: the head of a line, for its time
_HEAD = re.compile(rb"\d+:[A-Z] (\d\d) ([A-Z][a-z][a-z]) (?:(\d{4}) )?(\d\d:\d\d:\d\d\.\d\d\d) [-.*#] ")
_HEAD_AT_LINE = re.compile(rb"\n(" + _HEAD.pattern + rb")")
_CLOCK = re.compile(rb"\d\d:\d\d:\d\d\.\d\d\d")


def _meaning(key: bytes) -> tuple[Optional[str], Optional[Pattern]]:
    """(level name, pattern) of a captured text: b"*", b"# Connection with master lost.", b"=== REDIS ..."."""
    level = LEVELS.get(key[:1])
    if level is None:
        return None, _BY_TEXT.get(key)
    return level, _BY_TEXT.get(key[2:]) if len(key) > 2 else None


def head_time(line: bytes, day: date) -> Optional[str]:
    """ISO local time (`2024-08-07T04:49:07.332`) of a prefixed line, or None. A line without a year (Redis 4.0)
    takes the year that puts it nearest to `day`: a file of 1 January may hold lines of 31 December."""
    m = _HEAD.match(line)
    return _iso(m, day) if m else None


class LineClock:
    """The time of each line of one file, fast: `clock(line)` is the ISO local time as bytes
    (b"2024-08-07T04:49:07.332", sortable), or None for a line without a head. The head is found by position
    (`<pid>:<role> ` then the time), and the date part is worked out once per distinct day (Redis 4.0: the year
    that puts it nearest to the file's day). About twice as fast as matching the head regex on every line."""

    def __init__(self, day: date) -> None:
        self.day = day
        self._dates: dict[bytes, Optional[bytes]] = {}

    def __call__(self, line: bytes) -> Optional[bytes]:
        sp = line.find(b" ", 0, 24)
        if sp < 3 or line[sp - 2] != 58 or not line[:sp - 2].isdigit() or not 65 <= line[sp - 1] <= 90:
            return None  # not `<pid>:<role> ` (58 is ":", 65..90 is A-Z)
        with_year = line[sp + 12:sp + 13] == b" "  # "dd Mon yyyy " (5.0+), else "dd Mon " (4.0)
        start = sp + (13 if with_year else 8)
        clock = line[start:start + 12]
        tail = line[start + 12:start + 15]
        if (len(clock) < 12 or not _CLOCK.match(clock) or len(tail) < 3 or tail[0] != 32 or tail[2] != 32
                or tail[1] not in b".-*#"):
            return None
        dated = line[sp + 1:start - 1]
        prefix = self._dates.get(dated, b"")
        if prefix == b"":
            when = _date_of(dated[:2], dated[3:6], dated[7:] if with_year else None, self.day) \
                if dated[2:3] == b" " and (not with_year or dated[6:7] == b" ") else None
            prefix = self._dates[dated] = f"{when.isoformat()}T".encode() if when else None
        return prefix + clock if prefix else None


def _iso(m: re.Match, day: date) -> Optional[str]:
    dd, mon, yyyy, clock = m.groups()
    when = _date_of(dd, mon, yyyy, day)
    return f"{when.isoformat()}T{clock.decode()}" if when else None


def _date_of(dd: bytes, mon: bytes, yyyy: Optional[bytes], day: date) -> Optional[date]:
    """The date of a head's `dd Mon [yyyy]`; without a year, the one nearest to the file's day."""
    month = MONTHS.get(mon)
    if month is None or not dd.isdigit():
        return None
    if yyyy:
        if not yyyy.isdigit():
            return None
        try:
            return date(int(yyyy), month, int(dd))
        except ValueError:
            return None
    candidates = []
    for year in (day.year - 1, day.year, day.year + 1):
        try:
            candidates.append(date(year, month, int(dd)))
        except ValueError:  # 29 Feb of a year that has none, or no such day
            pass
    return min(candidates, key=lambda c: abs((c - day).days)) if candidates else None


class Digest:
    """Counts of one node-day's log; feed it the original bytes in any chunks, then read `result()`."""

    def __init__(self, day: str) -> None:
        self.day = day
        self._date = date.fromisoformat(day)
        self._carry = b""  # the start of a line whose end has not arrived yet
        self._line_start = True  # whether _carry starts a line (false after a runaway line was cut)
        self._counts: Counter = Counter()
        self._lines = 0
        self._first: Optional[bytes] = None  # the head of the first line that has one
        self._last: Optional[bytes] = None  # the head of the last line that has one
        self._result: Optional[dict] = None

    # --- streaming -----------------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if self._result is not None:
            raise ValueError("digest already finished")
        if not chunk:
            return
        # a newline in front lets raw patterns and the first line's head match at a line start like any other
        lead = 1 if self._line_start else 0
        data = b"".join((b"\n" if lead else b"", self._carry, chunk))
        end = data.rfind(b"\n")
        if end < lead:  # no line ends in this chunk
            if len(data) - lead <= MAX_CARRY:
                self._carry = data[lead:]
                return
            self._scan(data, lead, len(data), whole=False)  # a runaway line: digest it as it is, go on mid-line
            self._carry, self._line_start = b"", False
            return
        self._scan(data, lead, end)
        self._carry, self._line_start = data[end + 1:], True

    def finish(self) -> dict:
        """The result; the last line counts even without its newline. Feeding after this raises."""
        if self._result is None:
            if self._carry or not self._line_start:
                lead = 1 if self._line_start else 0
                self._scan((b"\n" if lead else b"") + self._carry, lead, lead + len(self._carry))
            self._carry = b""
            self._result = self._build()
        return self._result

    def result(self) -> dict:
        return self.finish()

    def _scan(self, data: bytes, lead: int, end: int, whole: bool = True) -> None:
        """Digest the lines in data[lead:end] (data[0] is a newline when lead is 1: the first starts a line)."""
        found = _SCAN.findall(data, 0, end)
        self._counts.update(found)
        lines = data.count(b"\n", lead, end) + 1 if whole else 0
        self._lines += lines
        if len(found) != lines:  # lines without a head: a crash report, a signal handler's, the startup logo
            self._counts.update(_RAW_SCAN.findall(data, 0, end))
        if self._first is None:
            m = _HEAD_AT_LINE.search(data, 0, end)
            if m:
                self._first = m.group(1)
        # the last line with a head: usually the very last one (a crash report's raw lines may follow it)
        pos = end
        while True:
            nl = data.rfind(b"\n", 0, pos)
            if nl < 0:
                return  # the text before the first newline is not a line start
            m = _HEAD.match(data, nl + 1, end)
            if m:
                self._last = m.group(0)
                return
            pos = nl

    def _build(self) -> dict:
        levels = dict.fromkeys(LEVEL_ORDER, 0)
        events: Counter = Counter()
        for key, n in self._counts.items():
            level, pattern = _meaning(key)
            if level:
                levels[level] += n
            if pattern:
                events[pattern.category] += n
        return {
            "v": VERSION, "day": self.day, "lines": self._lines, "levels": levels,
            "events": {c: events[c] for c in sorted(events)},
            "first": self._time(self._first), "last": self._time(self._last),
        }

    def _time(self, head: Optional[bytes]) -> Optional[str]:
        return head_time(head, self._date) if head else None

    # --- plain data in and out -------------------------------------------------------------------------------
    def to_metadata(self) -> str:
        """A compact ASCII line for an object's metadata header (well under 1 KB, only header-safe characters):

            v1 l=<lines> lv=<debug>/<verbose>/<notice>/<warning> t=<first>/<last> e=<category>:<n>,...
        """
        r = self.result()
        parts = [f"v{r['v']}", f"l={r['lines']}", "lv=" + "/".join(str(r["levels"][k]) for k in LEVEL_ORDER)]
        if r["first"] or r["last"]:
            parts.append(f"t={r['first'] or ''}/{r['last'] or ''}")
        if r["events"]:
            parts.append("e=" + ",".join(f"{c}:{n}" for c, n in r["events"].items()))
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: dict) -> Digest:
        """A finished digest holding a result read back (from a ledger, a manifest or a job record)."""
        digest = cls(str(data["day"]))
        levels = dict.fromkeys(LEVEL_ORDER, 0)
        levels.update({k: int(v) for k, v in (data.get("levels") or {}).items() if k in levels})
        events = {str(k): int(v) for k, v in (data.get("events") or {}).items()}
        digest._result = {"v": int(data.get("v", VERSION)), "day": digest.day, "lines": int(data.get("lines", 0)),
                          "levels": levels, "events": {c: events[c] for c in sorted(events)},
                          "first": data.get("first") or None, "last": data.get("last") or None}
        return digest

    @classmethod
    def from_metadata(cls, text: str, day: str) -> Digest:
        """The digest of a `to_metadata()` line (the object's log-day metadata gives `day`)."""
        return cls.from_dict(parse_metadata(text, day))


def parse_metadata(text: str, day: str) -> dict:
    """The result dict of a `to_metadata()` line; raises ValueError on a line this version cannot read."""
    fields = dict(part.partition("=")[::2] for part in text.split() if "=" in part)
    version = next((p for p in text.split() if p.startswith("v") and "=" not in p), "")
    if version != f"v{VERSION}":
        raise ValueError(f"digest metadata {text[:60]!r}: unknown version")
    levels = fields.get("lv", "0/0/0/0").split("/")
    if len(levels) != len(LEVEL_ORDER):
        raise ValueError(f"digest metadata {text[:60]!r}: lv needs {len(LEVEL_ORDER)} counts")
    first, _, last = fields.get("t", "").partition("/")
    events = {}
    for item in filter(None, fields.get("e", "").split(",")):
        name, _, count = item.rpartition(":")
        events[name] = int(count)
    return {"v": VERSION, "day": day, "lines": int(fields.get("l", 0)),
            "levels": dict(zip(LEVEL_ORDER, (int(n) for n in levels))),
            "events": {c: events[c] for c in sorted(events)}, "first": first or None, "last": last or None}


def notable(result: dict) -> dict:
    """The counts of events of severity warning and above (what an alert or a report marks), by category."""
    return {c: n for c, n in (result.get("events") or {}).items()
            if n and CATEGORIES.get(c, "warning") in ("warning", "critical")}
