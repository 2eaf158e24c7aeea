"""Copy benchmark: `shared.transfer.copy_link` (the archiver's copy) against its ceilings on the same store.

One deterministic Redis-log-like byte stream (8 distinct generated day logs of 64 MiB, cycled) is put in
SeaweedFS once per size. For each size and run (5 by default, medians): the legs — (a) the presigned link read to
nowhere with `requests`, (b) the same bytes uploaded from memory with esdk-obs-python multipart (8 MiB parts, as
many upload threads as the copy, the client built as the function builds it; the in-memory pool is reused for
sizes above it), (c) zlib at the same level over the same bytes, in-process, in 1 MiB chunks, (d) the node-day
digest (shared.digest) over the same bytes, in-process — and the copy itself, each in a fresh interpreter
(`copy_child`) that reports its time, CPU and peak RSS.

The copy runs with the configuration's defaults (PART_SIZE_MB, SINGLE_PUT_MAX_MB) and shared.transfer's upload
thread count; BENCH_PART_MB, BENCH_SINGLE_PUT_MB and BENCH_UPLOAD_THREADS measure other values, BENCH_SIZES_MB
other sizes (e.g. `64,512`). Each copy runs with the archiver's tap, the digest, and again without a tap, in the
same run, so the table shows what the digest costs (BENCH_TAP=digest or none for one of them).

Two ratios per copy. Against the slowest leg (the issue's target, the ideal if every leg had a core of its own).
And, for information, against what the machine can do: the legs' CPU, the store's included (read from
/proc/<pid>/stat of the SeaweedFS process), spread over every core. On a 2-core machine that also runs the store,
the legs' CPU adds up to more than the slowest leg's time, and no overlap can beat that sum / cores. Leg (c) is
one-thread zlib; the copy deflates on shared.transfer.DEFLATE_THREADS threads (one gzip member all the same), so
it can beat (c), and in the machine's floor compression counts as (c) split over those threads.

Each run's bucket is given its volumes before the run (SeaweedFS.grow_volumes): otherwise the store stops a write
for up to ~0.7 s whenever its 64 MB volumes fill, on whichever leg or copy is unlucky (a 64 MiB copy without a tap
measured 1.13 s, or 0.44 s, by that alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, Callable, Iterator

import requests
from obs import CompleteMultipartUploadRequest, CompletePart

from shared.config import Config
from shared.obs import build_client
from shared.runtime import Credentials
from shared.transfer import DEFLATE_THREADS
from shared.transfer import UPLOAD_THREADS as COPY_UPLOAD_THREADS
from tests.bench.common import ROOT, MiB, Row, median, process_cpu, progress, quick, runs
from tests.localcloud.redislog_text import generate_day

_DEFAULTS = {f.name: f.default for f in fields(Config)}
PART = 8 * MiB  # the baselines' part size (the pool is cut in parts of this size)
# the copy's own settings: the configuration's defaults, or the BENCH_* values to measure others
COPY_PART = int(os.environ.get("BENCH_PART_MB", str(_DEFAULTS["part_size"] // MiB))) * MiB
SINGLE_PUT = int(os.environ.get("BENCH_SINGLE_PUT_MB", str(_DEFAULTS["single_put_max"] // MiB))) * MiB
UPLOAD_THREADS = int(os.environ.get("BENCH_UPLOAD_THREADS", str(COPY_UPLOAD_THREADS)))
# the copy's taps, each measured in every run: the archiver's (digest), and none to show what it costs
TAPS = tuple(t.strip() for t in os.environ.get("BENCH_TAP", "digest,none").split(",") if t.strip())
assert TAPS and set(TAPS) <= {"digest", "none"}, f"BENCH_TAP={TAPS}: digest and/or none"
LEVEL = _DEFAULTS["gzip_level"]
BLOCK = 64 * MiB
READ_CHUNK = MiB
RSS_TARGET_MB = 150
VOLUME = 64 * MiB  # tests/localcloud/seaweed.py: -master.volumeSizeLimitMB=64


def sizes() -> list[int]:
    if os.environ.get("BENCH_SIZES_MB"):
        return [int(v) * MiB for v in os.environ["BENCH_SIZES_MB"].split(",")]
    return [32 * MiB, 128 * MiB] if quick() else [64 * MiB, 512 * MiB, 2048 * MiB]


def make_pool(total: int) -> list[bytes]:
    """The distinct bytes of the stream, as parts of PART bytes: up to 8 generated day logs of BLOCK bytes."""
    blocks = max(1, min(8, -(-total // BLOCK)))
    parts: list[bytes] = []
    for k in range(blocks):
        role = "M" if k % 2 == 0 else "S"
        content = generate_day(f"bench/{k}", date(2026, 1, 1) + timedelta(days=k), BLOCK, role).content[:BLOCK]
        parts.extend(content[i:i + PART] for i in range(0, BLOCK, PART))
    return parts


def stream_parts(pool: list[bytes], size: int) -> Iterator[bytes]:
    """The first `size` bytes of the stream (the pool cycled), part by part; `size` is a multiple of PART."""
    for n in range(size // PART):
        yield pool[n % len(pool)]


def multipart_upload(client, bucket: str, key: str, parts: Iterator[bytes], threads: int = UPLOAD_THREADS,
                     content_type: str = "text/plain") -> int:
    """Upload the parts with esdk-obs-python multipart on `threads` threads; the byte count. Content type and key
    suffix as the copy's, since the store decides by them whether it compresses what it keeps."""
    resp = client.initiateMultipartUpload(bucket, key, contentType=content_type)
    if resp.status >= 300:
        raise RuntimeError(f"initiate {bucket}/{key}: {resp.status} {resp.errorCode}")
    upload_id = resp.body.uploadId
    sent = 0

    def one(numbered: tuple[int, bytes]) -> str:
        number, data = numbered
        got = client.uploadPart(bucket, key, number, upload_id, object=data, partSize=len(data))
        if got.status >= 300:
            raise RuntimeError(f"uploadPart {number}: {got.status} {got.errorCode}")
        return got.body.etag

    def numbered() -> Iterator[tuple[int, bytes]]:
        nonlocal sent
        for number, data in enumerate(parts, 1):
            sent += len(data)
            yield number, data

    with ThreadPoolExecutor(threads) as pool:
        etags = list(pool.map(one, numbered()))
    done = client.completeMultipartUpload(bucket, key, upload_id, CompleteMultipartUploadRequest(
        parts=[CompletePart(partNum=i + 1, etag=e) for i, e in enumerate(etags)]))
    if done.status >= 300:
        raise RuntimeError(f"complete {bucket}/{key}: {done.status} {done.errorCode}")
    return sent


def download_to_null(session: requests.Session, url: str) -> int:
    with session.get(url, stream=True, timeout=(10, 120)) as resp:
        resp.raise_for_status()
        n = 0
        while True:
            chunk = resp.raw.read(READ_CHUNK, decode_content=False)
            if not chunk:
                return n
            n += len(chunk)


def gzip_parts(pool: list[bytes], size: int) -> list[bytes]:
    """zlib (gzip member, same level) over the stream in 1 MiB chunks; the output cut into PART-sized parts."""
    z = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    out, buffer = [], bytearray()
    for part in stream_parts(pool, size):
        view = memoryview(part)
        for i in range(0, len(part), READ_CHUNK):
            buffer += z.compress(view[i:i + READ_CHUNK])
            if len(buffer) >= PART:
                out.append(bytes(buffer[:PART]))
                del buffer[:PART]
    buffer += z.flush()
    if buffer:
        out.append(bytes(buffer))
    return out


def run_child(seaweed, url: str, bucket: str, key: str, compression: str, tap: str) -> dict:
    spec = {"ak": seaweed.access_key, "sk": seaweed.secret_key, "endpoint": seaweed.endpoint, "url": url,
            "bucket": bucket, "key": key, "compression": compression, "level": LEVEL, "part_size": COPY_PART,
            "single_put_max": SINGLE_PUT, "threads": UPLOAD_THREADS, "tap": tap}
    proc = subprocess.run([sys.executable, "-m", "tests.bench.copy_child", json.dumps(spec)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"copy child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mibps(size: int, seconds: float) -> float:
    return size / MiB / seconds


def _server_cpu(seaweed) -> float:
    """CPU seconds the SeaweedFS server has used so far."""
    return process_cpu(seaweed.process.pid)


@dataclass
class Leg:
    """One measured run of a leg: wall seconds, and CPU seconds of the measuring process and of the store."""

    wall: float
    cpu: float
    store_cpu: float

    @property
    def work(self) -> float:
        return self.cpu + self.store_cpu


def measured(seaweed, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Leg, Any]:
    store, cpu, start = _server_cpu(seaweed), time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    wall = time.perf_counter() - start
    return Leg(wall, time.process_time() - cpu, _server_cpu(seaweed) - store), result


def digest_stream(pool: list[bytes], size: int) -> dict:
    """The node-day digest over the stream in READ_CHUNK chunks, as the copy's tap is fed."""
    from shared.digest import Digest

    d = Digest("2026-01-01")
    for part in stream_parts(pool, size):
        for i in range(0, len(part), READ_CHUNK):
            d.feed(part[i:i + READ_CHUNK])
    return d.finish()


def _median_leg(legs: list[Leg]) -> Leg:
    return Leg(median([x.wall for x in legs]), median([x.cpu for x in legs]), median([x.store_cpu for x in legs]))


def bench_copy(seaweed) -> list[Row]:
    wanted = sizes()
    n_runs = runs(5)
    cores = os.cpu_count() or 1
    free = shutil.disk_usage(tempfile.gettempdir()).free
    # the sources, plus one run's outputs (copy, baseline upload) before they are deleted
    need = int(sum(wanted) * 5)
    dropped = []
    while wanted and need > free * 0.8:
        dropped.append(wanted.pop())
        need = int(sum(wanted) * 5)
    if dropped:
        progress(f"disk: {free / 2**30:.1f} GiB free in {tempfile.gettempdir()}: dropped sizes "
                 f"{[d // MiB for d in dropped]} MiB")
    client = seaweed.client()  # for setup
    # the baselines' uploads with the client the function builds (certificates, kept-alive connections)
    uploader = build_client(seaweed.endpoint, Credentials(seaweed.access_key, seaweed.secret_key), path_style=True)
    session = requests.Session()
    rows: list[Row] = []
    try:
        progress("copy: generating the source stream")
        pool = make_pool(max(wanted))
        src = "bench-source"
        client.createBucket(src)
        for size in wanted:
            progress(f"copy: putting the {size // MiB} MiB source object")
            multipart_upload(client, src, f"src-{size // MiB}", stream_parts(pool, size))
        for size in wanted:
            label = f"{size // MiB} MiB" if size < 1024 * MiB else f"{size // 2**30} GiB"
            url = client.createSignedUrl("GET", src, f"src-{size // MiB}", expires=86400).signedUrl
            legs: dict[str, list[Leg]] = {k: [] for k in ("a", "b_none", "b_gzip", "c", "d")}
            copies: dict[tuple[str, str], list[Leg]] = {(c, tap): [] for c in ("none", "gzip") for tap in TAPS}
            rss: dict[str, list[dict]] = {"none": [], "gzip": []}
            compressed: list[bytes] = []
            for run in range(n_runs):
                bucket = f"bench-copy-{size // MiB}-{run}"
                client.createBucket(bucket)
                # room for the run's writes (a baseline and a copy per tap, for none; gzip's are ~1/10 of that),
                # so that no leg and no copy waits for the store to grow a volume
                seaweed.grow_volumes(bucket, -(-size * (1 + len(TAPS)) * 12 // 10 // VOLUME) + 2)
                progress(f"copy {label}: run {run + 1}/{n_runs}")
                leg, got = measured(seaweed, download_to_null, session, url)
                assert got == size, (got, size)
                legs["a"].append(leg)
                leg, _ = measured(seaweed, multipart_upload, uploader, bucket, "baseline-none.log",
                                  stream_parts(pool, size))
                legs["b_none"].append(leg)
                client.deleteObject(bucket, "baseline-none.log")
                if "digest" in TAPS:
                    leg, _ = measured(seaweed, digest_stream, pool, size)
                    legs["d"].append(leg)
                for compression in ("none", "gzip"):
                    if compression == "gzip":
                        leg, compressed = measured(seaweed, gzip_parts, pool, size)
                        legs["c"].append(leg)
                        leg, _ = measured(seaweed, multipart_upload, uploader, bucket, "baseline-gzip.log.gz",
                                          iter(compressed), content_type="application/gzip")
                        legs["b_gzip"].append(leg)
                        client.deleteObject(bucket, "baseline-gzip.log.gz")
                    key = "copy-gzip.log.gz" if compression == "gzip" else "copy-none.log"
                    for tap in TAPS:
                        store = _server_cpu(seaweed)
                        result = run_child(seaweed, url, bucket, key, compression, tap)
                        assert result["bytes_in"] == size, result
                        assert result["multipart"] == (result["bytes_out"] > SINGLE_PUT), result
                        copies[(compression, tap)].append(
                            Leg(result["seconds"], result["cpu_seconds"], _server_cpu(seaweed) - store))
                        if tap == TAPS[0]:
                            rss[compression].append(result)
                        client.deleteObject(bucket, key)
                seaweed.delete_bucket(bucket)
            med = {k: _median_leg(v) for k, v in legs.items() if v}
            out_mib = sum(len(p) for p in compressed) / MiB
            for compression in ("none", "gzip"):
                for tap in TAPS:
                    rows += _copy_rows(size, label, compression, tap, med, _median_leg(copies[(compression, tap)]),
                                       out_mib, cores)
            for compression in ("none", "gzip"):
                peak = max(r["peak_rss_kib"] for r in rss[compression]) * 1024 / 1e6
                idle = median([r["idle_rss_kib"] for r in rss[compression]]) * 1024 / 1e6
                rows.append(Row("peak RSS", f"{label} {compression}, tap {TAPS[0]}", f"{peak:.0f} MB (max of runs)",
                                f"{idle:.0f} MB after imports", None, f"< {RSS_TARGET_MB} MB, flat",
                                peak < RSS_TARGET_MB))
            progress(f"copy {label}: " + ", ".join(f"{k} {v.wall:.2f}s" for k, v in med.items()) + ", " + ", ".join(
                f"{c}/{tap} {median([x.wall for x in v]):.2f}s" for (c, tap), v in copies.items()))
        seaweed.delete_bucket(src)
    finally:
        session.close()
        client.close()
    settings = f"PART_SIZE_MB {COPY_PART // MiB}, SINGLE_PUT_MAX_MB {SINGLE_PUT // MiB}, {UPLOAD_THREADS} upload " \
               f"threads; medians of {n_runs}"
    rows.append(Row("copy", "settings", settings, f"baselines: {PART // MiB} MiB parts", None, "", None))
    if dropped:
        rows.append(Row("copy", f"sizes {[d // MiB for d in dropped]} MiB dropped", "not enough disk", "", None,
                        "", None))
    return rows


def _copy_rows(size: int, label: str, compression: str, tap: str, med: dict[str, Leg], copy: Leg, out_mib: float,
               cores: int) -> list[Row]:
    """Two rows for one copy: against its slowest leg (the target), and against what the machine's cores can do
    (every leg's CPU, the store's included, spread over all cores: on 2 cores the legs do not each get one)."""
    legs = {"a": med["a"], "b": med[f"b_{compression}"]}
    if compression == "gzip":
        legs["c"] = med["c"]
    if tap == "digest":
        legs["d"] = med["d"]
    slowest = max(legs, key=lambda k: legs[k].wall)
    ratio = copy.wall / legs[slowest].wall
    base = " / ".join(f"{k} {_mibps(size, v.wall):.0f}" for k, v in legs.items())
    note = f", out {out_mib:.0f} MiB" if compression == "gzip" else ""
    case = f"{label} {compression}, tap {tap}"
    work = sum(v.work for v in legs.values())
    # the copy deflates on DEFLATE_THREADS threads: compression's own floor is its one-thread time split over them
    walls = {k: v.wall / (min(DEFLATE_THREADS, cores) if k == "c" else 1) for k, v in legs.items()}
    longest = max(walls, key=walls.get)
    floor = max(walls[longest], work / cores)
    return [
        Row("copy", case, f"{_mibps(size, copy.wall):.0f} MiB/s ({copy.wall:.2f} s)",
            f"{base} MiB/s (max: {slowest}{note})", ratio, "≤ 1.15", ratio <= 1.15),
        Row("copy/cores", case, f"{copy.wall:.2f} s; CPU {copy.work:.2f} s (copy {copy.cpu:.2f} + store "
            f"{copy.store_cpu:.2f})", f"max({walls[longest]:.2f} s leg {longest}, legs' CPU {work:.2f} s / "
            f"{cores} cores) = {floor:.2f} s", copy.wall / floor, "informational", None),
    ]
