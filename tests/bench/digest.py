"""Digest benchmark: `shared.digest.Digest.feed` against hashlib.sha256 over the same bytes, in the same run.

The copy already hashes every byte with SHA-256 and gzips it; the digest is a third pass on the reading thread.
The bytes are generated Redis logs (tests/localcloud/redislog_text.py, masters and replicas), fed in the copy's
1 MiB chunks. Two cases: the generated log as it is (about 1 line in 10 is a counted event: far more than a real
log has), and the same lines without any counted event (a quiet day: every line matches nothing). zlib at the
archiver's level 6 over the same chunks is shown as the pace the copy cannot beat.

    python -m tests.bench.digest          (or BENCH_ONLY=digest make bench; BENCH_QUICK=1 for 16 MiB)
"""

from __future__ import annotations

import hashlib
import time
import zlib
from datetime import date, timedelta

from tests.bench.common import MiB, Row, median, progress, quick, runs, table
from tests.localcloud.redislog_text import generate_day

CHUNK = MiB  # shared.transfer.READ_CHUNK
LEVEL = 6  # the archiver's default GZIP_LEVEL
# The digest runs on the copy's reading thread, holding the GIL (sha256 and zlib release it); at twice the pace of
# gzip-6, which has a thread of its own and bounds the copy, it takes less than half of what the gzip thread needs.
TARGET_VS_GZIP = 2.0


def sample(total: int) -> bytes:
    days = 4
    return b"".join(generate_day(f"bench-digest/{k}", date(2026, 1, 1) + timedelta(days=k), total // days,
                                 "M" if k % 2 == 0 else "S").content for k in range(days))


def quiet(data: bytes) -> bytes:
    """`data` without the lines the digest counts as an event (found with the digest's own scan)."""
    from shared.digest import _SCAN

    kept, start = [], 0
    for m in _SCAN.finditer(data):
        if len(m.group(1)) > 1:  # the level and a known message's text
            line_start = data.rfind(b"\n", 0, m.start()) + 1
            line_end = data.find(b"\n", m.end()) + 1 or len(data)
            kept.append(data[start:line_start])
            start = line_end
    kept.append(data[start:])
    return b"".join(kept)


def _digest(chunks: list[bytes]) -> dict:
    from shared.digest import Digest

    d = Digest("2026-01-01")
    for chunk in chunks:
        d.feed(chunk)
    return d.result()


def _sha256(chunks: list[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _gzip(chunks: list[bytes]) -> int:
    z = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    return sum(len(z.compress(c)) for c in chunks) + len(z.flush())


def _timed(fn, chunks: list[bytes]) -> float:
    start = time.perf_counter()
    fn(chunks)
    return time.perf_counter() - start


def bench_digest() -> list[Row]:
    size = 16 * MiB if quick() else 128 * MiB
    n = max(3, runs())
    progress(f"digest: generating {size // MiB} MiB of log")
    busy = sample(size)
    cases = [("generated log, ~10% lines counted", busy), ("quiet log, no line counted", quiet(busy))]
    rows = []
    for case, data in cases:
        chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        mib = len(data) / MiB
        result = _digest(chunks)
        events = sum(result["events"].values())
        # interleaved, so that a neighbour's load falls on all three alike; medians
        times: dict = {"digest": [], "sha": [], "gzip": []}
        for _ in range(n):
            times["digest"].append(_timed(_digest, chunks))
            times["sha"].append(_timed(_sha256, chunks))
            times["gzip"].append(_timed(_gzip, chunks))
        t_digest, t_sha, t_gzip = (median(times[k]) for k in ("digest", "sha", "gzip"))
        speed, sha, gz = mib / t_digest, mib / t_sha, mib / t_gzip
        progress(f"digest {case}: {speed:.0f} MiB/s, sha256 {sha:.0f} MiB/s, gzip-{LEVEL} {gz:.0f} MiB/s, "
                 f"{result['lines']} lines, {events} events")
        rows.append(Row("digest", f"{case} ({mib:.0f} MiB, {result['lines'] / mib:.0f} lines/MiB)",
                        f"{speed:.0f} MiB/s", f"sha256 {sha:.0f} MiB/s; gzip-{LEVEL} {gz:.0f} MiB/s",
                        t_digest / t_sha, f"≥ {TARGET_VS_GZIP:.0f}× gzip-{LEVEL}", speed >= TARGET_VS_GZIP * gz))
    return rows


if __name__ == "__main__":
    rows = bench_digest()
    print("ratio = digest time / sha256 time over the same bytes (medians)")
    print(table(rows))
