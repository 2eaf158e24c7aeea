"""Deterministic, realistic Redis run-log text for the DCS emulator.

A node's log for one day is a function of (seed, day, size, role): the same inputs give the same bytes, so a test
can ask the emulator what DCS "should" have handed out (`DcsEmulator.log_bytes`) and compare byte for byte.

Lines look like Redis 5+ writes them, `<pid>:<role> <dd Mon yyyy> <hh:mm:ss.mmm> <level> <message>`, with role
M (master), S (replica) and C (a fork child saving or rewriting), and timestamps that never go backwards through
the day in the log's timezone. Large logs (tens of MiB) are built from a pre-generated block of messages stamped
in bursts with one `%` formatting per burst, so 64 MiB takes well under a second.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAY_MS = 86_400_000
BLOCK_LINES = 1024  # lines in the pre-generated message block; a power of two, so bursts tile it
MAX_BURSTS = 16_384  # upper bound of distinct timestamps in one day's log (keeps big logs fast)
TS_WIDTH = len("00:00:00.000")

_MASTER_MESSAGES = (
    "* {n} changes in {s} seconds. Saving...",
    "* Background saving started by pid {cpid}",
    "* Background saving terminated with success",
    "* Replica 192.168.{a}.{b}:6379 asks for synchronization",
    "* Partial resynchronization request from 192.168.{a}.{b}:6379 accepted. Sending {n} bytes of backlog",
    "* Synchronization with replica 192.168.{a}.{b}:6379 succeeded",
    "# Connection with replica 192.168.{a}.{b}:6379 lost.",
    "* Starting automatic rewriting of AOF on {n}% growth",
    "* Background append only file rewriting started by pid {cpid}",
    "* Background AOF rewrite terminated with success",
    "* Residual parent diff successfully flushed to the rewritten AOF ({s}.{n} MB)",
    "* Background AOF rewrite finished successfully",
    "- Accepted 192.168.{a}.{b}:{port}",
    "- Client closed connection",
    "# Client id={n} addr=192.168.{a}.{b}:{port} cmd=client scheduled to be closed ASAP for overcoming"
    " of output buffer limits.",
    "* DB saved on disk",
)
_REPLICA_MESSAGES = (
    "* Connecting to MASTER 192.168.{a}.{b}:6379",
    "* MASTER <-> REPLICA sync started",
    "* Non blocking connect for SYNC fired the event.",
    "* Master replied to PING, replication can continue...",
    "* Trying a partial resynchronization (request {hex}:{n}).",
    "* Successful partial resynchronization with master.",
    "* MASTER <-> REPLICA sync: receiving {n} bytes from master",
    "* MASTER <-> REPLICA sync: Flushing old data",
    "* MASTER <-> REPLICA sync: Loading DB in memory",
    "* MASTER <-> REPLICA sync: Finished with success",
    "# Connection with master lost.",
    "* Caching the disconnected master state.",
    "* {n} changes in {s} seconds. Saving...",
    "* Background saving started by pid {cpid}",
    "* Background saving terminated with success",
)
_CHILD_MESSAGES = (
    "* DB saved on disk",
    "* RDB: {s} MB of memory used by copy-on-write",
    "* Concatenating {s}.{n} MB of AOF diff received from parent.",
    "* SYNC append only file rewrite performed",
    "* AOF rewrite: {s} MB of memory used by copy-on-write",
)
_START_MESSAGES = (
    "# oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
    "# Redis version=5.0.14, bits=64, commit=00000000, modified=0, pid={pid}, just started",
    "# Configuration loaded",
    "* Running mode=standalone, port=6379.",
    "# Server initialized",
    "* Ready to accept connections",
)


@dataclass(frozen=True)
class DayLog:
    """One node's log of one day: the bytes and, per burst of lines, its time and the offset where it ends."""

    content: bytes
    burst_ms: list[int]  # milliseconds after local midnight of each burst, non-decreasing
    burst_end: list[int]  # byte offset just past each burst

    def upto(self, ms_after_midnight: int) -> bytes:
        """The lines logged at or before this instant of the day (a prefix of the day, cut at a line end)."""
        count = bisect.bisect_right(self.burst_ms, ms_after_midnight)
        return self.content[: self.burst_end[count - 1]] if count else b""


def parse_offset(text: str) -> tzinfo:
    """`+08:00` / `-03:30` / `Z` as a fixed-offset tzinfo."""
    if text in ("Z", "UTC", "+00:00", "-00:00"):
        return timezone.utc
    sign = -1 if text.startswith("-") else 1
    hours, _, minutes = text.lstrip("+-").partition(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))


def ms_after_midnight(day: date, tz: tzinfo, instant: datetime) -> int:
    """How far `instant` is into `day` (in `tz`), in whole milliseconds; negative before, > DAY_MS after."""
    midnight = datetime.combine(day, time(0), tz)
    delta = instant - midnight
    return delta.days * DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000


def _block(rng: random.Random, role: str, pid: int) -> list[tuple[str, str]]:
    """BLOCK_LINES (pid:role, level+message) pairs for one node; `%` is escaped for the burst templates."""
    messages = _MASTER_MESSAGES if role == "M" else _REPLICA_MESSAGES
    lines: list[tuple[str, str]] = [(f"{pid}:{role}", m.format(pid=pid)) for m in _START_MESSAGES]
    cpid = pid + 1
    while len(lines) < BLOCK_LINES:
        fields = {
            "n": rng.randrange(1, 100_000), "s": rng.randrange(1, 900), "a": rng.randrange(0, 4),
            "b": rng.randrange(2, 254), "port": rng.randrange(30_000, 60_000), "cpid": cpid,
            "hex": f"{rng.getrandbits(160):040x}",
        }
        if rng.random() < 0.2:
            lines.append((f"{cpid}:C", rng.choice(_CHILD_MESSAGES).format(**fields)))
            cpid += rng.randrange(1, 50)
        else:
            lines.append((f"{pid}:{role}", rng.choice(messages).format(**fields)))
    return [(head, body.replace("%", "%%")) for head, body in lines[:BLOCK_LINES]]


def generate_day(seed: str, day: date, size: int, role: str = "M") -> DayLog:
    """About `size` bytes (at least, cut at a line end) of one node's log for `day`; `size <= 0` gives b""."""
    if size <= 0:
        return DayLog(b"", [], [])
    rng = random.Random(f"{seed}/{day.isoformat()}")
    pid = rng.randrange(1000, 60_000)
    date_text = f"{day.day:02d} {MONTHS[day.month - 1]} {day.year}"
    block = [(f"{head} {date_text} ", f" {body}\n") for head, body in _block(rng, role, pid)]
    lengths = [len(h) + TS_WIDTH + len(t.replace("%%", "%")) for h, t in block]

    # How many lines make `size` bytes: whole blocks, then enough lines of the next one.
    block_bytes = sum(lengths)
    cycles, rest = divmod(size, block_bytes)
    n_lines = cycles * BLOCK_LINES
    if rest:
        acc = 0
        for length in lengths:
            acc += length
            n_lines += 1
            if acc >= rest:
                break

    burst = 1
    while n_lines // burst > MAX_BURSTS and burst < BLOCK_LINES:
        burst *= 2
    n_bursts = -(-n_lines // burst)
    per_block = BLOCK_LINES // burst
    templates = ["".join(h + "%s" + t for h, t in block[i * burst:(i + 1) * burst]) for i in range(per_block)]
    template_bytes = [sum(lengths[i * burst:(i + 1) * burst]) for i in range(per_block)]

    step = DAY_MS / n_bursts
    jitter = max(int(step) - 1, 0)
    parts: list[str] = []
    burst_ms: list[int] = []
    burst_end: list[int] = []
    offset = 0
    for b in range(n_bursts):
        ms = int(b * step) + (rng.randrange(jitter) if jitter else 0)
        hh, rem = divmod(ms, 3_600_000)
        mm, rem = divmod(rem, 60_000)
        ss, milli = divmod(rem, 1000)
        stamp = f"{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}"
        slot = b % per_block
        lines_here = min(burst, n_lines - b * burst)
        if lines_here == burst:
            parts.append(templates[slot] % ((stamp,) * burst))
            offset += template_bytes[slot]
        else:  # the last, short burst
            first = slot * burst
            for h, t in block[first:first + lines_here]:
                line = h + stamp + t.replace("%%", "%")
                parts.append(line)
                offset += len(line)
        burst_ms.append(ms)
        burst_end.append(offset)
    content = "".join(parts).encode("ascii")
    return DayLog(content, burst_ms, burst_end)
