"""The read-back core: keys to node-days, gunzip and lines in bounded pieces, the time merge, grep, the pool."""

from __future__ import annotations

import gzip
import threading
import time
from datetime import date

import pytest

from shared.obs import ObjectInfo
from shared.readback import (
    ReadError,
    compile_pattern,
    grep_lines,
    gunzip,
    keep_final,
    labels,
    merge,
    node_of,
    ordered_parallel,
    parse_key,
    resolve_day,
    rows_from_objects,
    select,
    split_lines,
    with_metadata,
)
from tests.localcloud.redislog_text import generate_day

P = "redis-run-logs/"
INST = "6a1c2b3d-0000-4000-8000-000000000001"


def key(day: str, group: str, ip: str, suffix: str = ".gz") -> str:
    return f"{P}{INST}/{day}/{group}/redis_{ip}_{day}.log{suffix}"


def objects(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(k, 100 + n, None, "") for n, k in enumerate(keys)]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- keys and rows
def test_keys_parse_into_node_days_and_other_keys_are_left_out():
    rows = rows_from_objects(objects(
        key("2024-08-07", "group-0", "192.168.0.2"),
        key("2024-08-07", "group-0", "192.168.0.3", ".partial.gz"),
        key("2024-08-08", "group-1", "192.168.0.4", ""),
        f"{P}_report/index.html", f"{P}{INST}/not-a-day/group-0/x.log.gz", f"{P}{INST}/2024-08-07/x.log.gz",
        "elsewhere/x.log.gz"), P)
    assert [(r.day, r.group, r.node, r.partial, r.compressed, r.state) for r in rows] == [
        ("2024-08-07", "group-0", "192.168.0.2", False, True, "archived"),
        ("2024-08-07", "group-0", "192.168.0.3", True, True, "partial"),
        ("2024-08-08", "group-1", "192.168.0.4", False, False, "archived")]
    assert rows[0].file == "redis_192.168.0.2_2024-08-07.log" and rows[0].stored_size == 100
    assert parse_key(P, key("2024-08-07", "g", "1.2.3.4", ".partial"))["partial"]
    assert node_of("odd-name.log") == "odd-name.log"


def test_a_final_copy_hides_the_partial_copy_of_the_same_node_day():
    rows = rows_from_objects(objects(
        key("2024-08-07", "group-0", "192.168.0.2", ".partial.gz"), key("2024-08-07", "group-0", "192.168.0.2"),
        key("2024-08-08", "group-0", "192.168.0.2", ".partial.gz")), P)
    kept = keep_final(rows)
    assert [(r.day, r.state) for r in kept] == [("2024-08-07", "archived"), ("2024-08-08", "partial")]


def test_metadata_completes_a_row_unquoted_with_its_digest():
    (row,) = rows_from_objects(objects(key("2024-08-07", "group-0", "192.168.0.2")), P)
    full = with_metadata(row, {"original-size": "4096", "sha256": "ab" * 32, "instance-name": "orders%20cache",
                               "replication-ip": "192.168.0.2", "content-type": "application/gzip",
                               "digest": "v1 l=10 lv=0/1/8/1 t=2024-08-07T00:00:01.000/2024-08-07T23:00:00.000 "
                                         "e=master_lost:1"})
    assert (full.original_size, full.instance_name) == (4096, "orders cache")
    assert full.digest["events"] == {"master_lost": 1} and full.digest["lines"] == 10
    assert with_metadata(row, {"digest": "v9 something newer"}).digest is None
    assert with_metadata(row, {}).original_size is None


def test_labels_are_the_ip_for_one_group_and_group_ip_for_several():
    one = rows_from_objects(objects(key("2024-08-07", "group-0", "10.0.0.1"), key("2024-08-07", "group-0",
                                                                                   "10.0.0.2")), P)
    assert sorted(labels(one).values()) == ["10.0.0.1", "10.0.0.2"]
    two = rows_from_objects(objects(key("2024-08-07", "group-0", "10.0.0.1"), key("2024-08-07", "group-1",
                                                                                   "10.0.0.3")), P)
    assert sorted(labels(two).values()) == ["group-0/10.0.0.1", "group-1/10.0.0.3"]


def test_select_keeps_the_days_and_nodes_asked_for():
    rows = rows_from_objects(objects(*[key(d, g, ip) for d in ("2024-08-06", "2024-08-07", "2024-08-08")
                                       for g, ip in (("group-0", "10.0.0.1"), ("group-1", "10.0.0.3"))]), P)
    assert {r.day for r in select(rows, "2024-08-07", "2024-08-07")} == {"2024-08-07"}
    assert {r.node for r in select(rows, nodes=["10.0.0.3"])} == {"10.0.0.3"}
    assert {r.node for r in select(rows, nodes=["group-0"])} == {"10.0.0.1"}
    assert len(select(rows, "2024-08-07", nodes=["group-1/10.0.0.3", "10.0.0.1"])) == 4


def test_days_are_given_as_dates_or_relative_to_today():
    today = date(2024, 3, 1)
    assert resolve_day("2024-02-29", today) == "2024-02-29"
    assert resolve_day("yesterday", today) == "2024-02-29" and resolve_day("today", today) == "2024-03-01"
    assert resolve_day("-7", today) == "2024-02-23"
    with pytest.raises(ValueError):
        resolve_day("last week", today)


# --- gunzip and lines
def test_gunzip_reads_a_stream_in_any_chunks_and_several_members():
    text = b"".join(b"%d:M 07 Aug 2024 00:00:00.000 * line %d\n" % (n, n) for n in range(5000))
    data = gzip.compress(text[:70_000]) + gzip.compress(text[70_000:])
    for size in (1, 7, 4096, len(data)):
        assert b"".join(gunzip(pieces(data, size))) == text


def test_gunzip_hands_out_bounded_pieces_of_a_very_compressible_stream():
    data = gzip.compress(b"\n" * (20 << 20))
    outs = list(gunzip([data], out_chunk=1 << 20))
    assert sum(map(len, outs)) == 20 << 20 and max(map(len, outs)) <= 1 << 20


def test_gunzip_refuses_a_cut_stream_and_garbage_and_reads_an_empty_object():
    data = gzip.compress(b"x" * 100_000)
    with pytest.raises(ReadError, match="ends early"):
        list(gunzip([data[:-20]], "k"))
    with pytest.raises(ReadError, match="not a readable gzip"):
        list(gunzip([b"plain text, not gzip\n"], "k"))
    assert list(gunzip([])) == [] and b"".join(gunzip([gzip.compress(b"")])) == b""


def test_lines_split_only_on_newline_whatever_the_chunks():
    text = b"a\r\nb\rc\n\nlast without newline"
    for size in (1, 2, 5, 100):
        assert list(split_lines(pieces(text, size))) == [b"a\r\n", b"b\rc\n", b"\n", b"last without newline"]


# --- merge
def test_merge_interleaves_nodes_by_time_and_keeps_untimed_lines_with_the_line_before():
    a = [b"1:M 07 Aug 2024 00:00:01.000 * a1\n", b"1:M 07 Aug 2024 00:00:03.000 # a2\n",
         b"=== REDIS BUG REPORT START: Cut & paste starting from here ===\n", b"raw line of the report\n",
         b"1:M 07 Aug 2024 00:00:05.000 * a3"]
    b = [b"2:S 07 Aug 2024 00:00:02.000 * b1\n", b"2:S 07 Aug 2024 00:00:03.000 * b2\n",
         b"2:signal-handler (1723000000) Received SIGTERM scheduling shutdown...\n",
         b"2:S 07 Aug 2024 00:00:04.000 * b3\n"]
    got = list(merge([("10.0.0.1", iter(a)), ("10.0.0.2", iter(b))], "2024-08-07"))
    assert got == [
        b"10.0.0.1 1:M 07 Aug 2024 00:00:01.000 * a1\n",
        b"10.0.0.2 2:S 07 Aug 2024 00:00:02.000 * b1\n",
        b"10.0.0.1 1:M 07 Aug 2024 00:00:03.000 # a2\n",
        b"10.0.0.1 === REDIS BUG REPORT START: Cut & paste starting from here ===\n",
        b"10.0.0.1 raw line of the report\n",
        b"10.0.0.2 2:S 07 Aug 2024 00:00:03.000 * b2\n",
        b"10.0.0.2 2:signal-handler (1723000000) Received SIGTERM scheduling shutdown...\n",
        b"10.0.0.2 2:S 07 Aug 2024 00:00:04.000 * b3\n",
        b"10.0.0.1 1:M 07 Aug 2024 00:00:05.000 * a3\n",
    ]


def test_merge_of_redis_4_lines_on_new_years_day_puts_december_first():
    a = [b"1:M 31 Dec 23:59:59.900 * old year\n", b"1:M 01 Jan 00:00:00.200 * new year\n"]
    b = [b"2:S 01 Jan 00:00:00.100 * replica, new year\n"]
    got = [line.split(b" ", 1)[0] + b" " + line.rsplit(b"* ", 1)[1]
           for line in merge([("m", iter(a)), ("s", iter(b))], "2025-01-01")]
    assert got == [b"m old year\n", b"s replica, new year\n", b"m new year\n"]


# --- grep
LOG = (b"1:M 07 Aug 2024 00:00:01.000 # Connection with master lost.\n"
       b"1:M 07 Aug 2024 00:00:02.000 * MASTER <-> REPLICA sync started\n"
       b"1:M 07 Aug 2024 00:00:03.000 * Connecting to MASTER 10.0.0.1:6379\n"
       b"1:M 07 Aug 2024 00:00:04.000 * connection refused by peer")


def test_grep_prints_each_matching_line_once_whatever_the_chunks():
    for size in (1, 3, 50, len(LOG)):
        assert list(grep_lines(pieces(LOG, size), compile_pattern("MASTER"))) == LOG.splitlines(keepends=True)[1:3]
        assert len(list(grep_lines(pieces(LOG, size), compile_pattern("connection", ignore_case=True)))) == 2
        assert list(grep_lines(pieces(LOG, size), compile_pattern("peer$"))) == [LOG.splitlines()[3] + b"\n"]


def test_grep_anchors_at_lines_and_never_matches_across_them():
    assert len(list(grep_lines([LOG], compile_pattern(r"^1:M")))) == 4
    assert list(grep_lines([LOG], compile_pattern(r"lost\.\s1:M"))) == []
    assert len(list(grep_lines([LOG + b"\n\n"], compile_pattern("")))) == 5  # every line, the empty one too
    assert list(grep_lines([LOG], compile_pattern(r"started\n"))) == []


def test_a_bad_pattern_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="pattern"):
        compile_pattern("(unclosed")


# --- the ordered pool
def test_the_pool_hands_out_results_in_task_order_with_bounded_queues():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def produce(task, put):
        for n in range(50):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            put((task, n))
        time.sleep(0.001 * (5 - task % 5))

    got = []
    for _task, items in ordered_parallel(list(range(10)), produce, workers=4, depth=3):
        for item in items:
            with lock:
                in_flight[0] -= 1
            got.append(item)
    assert got == [(t, n) for t in range(10) for n in range(50)]
    assert peak[0] <= 4 * (3 + 1) + 1


def test_an_error_in_a_task_is_raised_when_the_reader_reaches_it():
    def produce(task, put):
        if task == 2:
            raise ReadError("task 2 broke")
        put(task)

    seen = []
    with pytest.raises(ReadError, match="task 2"):
        for _task, items in ordered_parallel([0, 1, 2, 3], produce, workers=2):
            seen.extend(items)
    assert seen == [0, 1]


def test_stopping_early_stops_the_tasks():
    started = threading.Event()
    produced = [0]

    def produce(task, put):
        started.set()
        while True:
            put(b"x")
            produced[0] += 1

    results = ordered_parallel([0, 1], produce, workers=2, depth=2)
    _, items = next(results)
    next(items)
    results.close()  # returns once both producers have stopped
    count = produced[0]
    time.sleep(0.3)
    assert produced[0] == count



# --- the shell, on a fake OBS client
class _Resp:
    def __init__(self, status=200, body=None, header=()):
        self.status, self.body, self.header = status, body, list(header)
        self.errorCode = self.errorMessage = self.requestId = None
        self.reason = ""


class _Body:
    def __init__(self, data: bytes, break_after: int = -1):
        self.data, self.pos, self.break_after, self.closed = data, 0, break_after, False

    def read(self, n):
        if 0 <= self.break_after <= self.pos:
            raise ConnectionResetError("peer reset")
        end = self.pos + n if self.break_after < 0 else min(self.pos + n, self.break_after)
        chunk, self.pos = self.data[self.pos:end], end
        return chunk

    def close(self):
        self.closed = True


class FakeClient:
    """listObjects / getObjectMetadata / getObject over a dict of key -> (bytes, metadata)."""

    def __init__(self, objects: dict, breaks: tuple = ()):
        self.objects, self.breaks, self.gets = objects, list(breaks), []

    def listObjects(self, bucket, prefix=None, marker=None, max_keys=None, delimiter=None):
        from types import SimpleNamespace as NS

        keys = sorted(k for k in self.objects if k.startswith(prefix or "") and (marker is None or k > marker))
        if delimiter:
            folders = sorted({prefix + k[len(prefix):].split(delimiter, 1)[0] + delimiter for k in keys
                              if delimiter in k[len(prefix):]})
            return _Resp(body=NS(commonPrefixs=[NS(prefix=f) for f in folders], contents=[], is_truncated=False,
                                 next_marker=None))
        keys = keys[:max_keys or 1000]
        return _Resp(body=NS(contents=[NS(key=k, size=len(self.objects[k][0]), lastModified=None, etag='"e"')
                                       for k in keys], is_truncated=False, next_marker=None, commonPrefixs=[]))

    def getObjectMetadata(self, bucket, key):
        if key not in self.objects:
            return _Resp(404)
        return _Resp(header=[(f"x-amz-meta-{k}", v) for k, v in self.objects[key][1].items()])

    def getObject(self, bucket, key, headers=None, loadStreamInMemory=False):
        from types import SimpleNamespace as NS

        data = self.objects[key][0]
        start = int(headers.range.rstrip("-")) if headers is not None else 0
        self.gets.append((start, None if headers is None else headers.if_match))
        cut = self.breaks.pop(0) if self.breaks else -1
        return _Resp(body=NS(etag='"etag-1"', response=_Body(data[start:], cut)))


def reader_on(objects, breaks=()):
    from shared.obs import Obs
    from shared.readback import ArchiveReader

    client = FakeClient(objects, breaks)
    return ArchiveReader(Obs(client), "bucket", P, workers=2), client


def test_a_read_that_breaks_resumes_where_it_broke_on_the_same_object_version():
    text = generate_day("resume", date(2024, 8, 7), 3 << 20).content
    data = gzip.compress(text)
    third = len(data) // 3
    k = key("2024-08-07", "group-0", "10.0.0.1")
    reader, client = reader_on({k: (data, {})}, breaks=(third, third))
    (row,) = reader.node_days(INST, metadata=False)
    assert b"".join(reader.chunks(row)) == text
    assert client.gets == [(0, None), (third, '"etag-1"'), (2 * third, '"etag-1"')]

    reader, _ = reader_on({k: (data, {})}, breaks=(10, 10, 10, 10, 10))
    with pytest.raises(ReadError, match="read broke"):
        b"".join(reader.chunks(row))


def test_an_instance_is_found_by_id_or_by_the_name_on_its_objects_and_an_ambiguous_name_is_refused():
    other, third = "7b2c0000-0000-4000-8000-000000000002", "8c3d0000-0000-4000-8000-000000000003"
    objs = {key("2024-08-07", "group-0", "10.0.0.1"): (b"", {"instance-name": "orders%20cache"}),
            f"{P}{other}/2024-08-07/group-0/redis_10.0.0.2_2024-08-07.log.gz": (b"", {"instance-name": "twin"}),
            f"{P}{third}/2024-08-07/group-0/redis_10.0.0.3_2024-08-07.log.gz": (b"", {"instance-name": "twin"}),
            f"{P}_report/index.html": (b"", {})}
    reader, _ = reader_on(objs)
    assert reader.instance_ids() == [INST, other, third]
    assert reader.resolve(INST) == (INST, None)
    assert reader.resolve("orders cache", date(2024, 8, 8)) == (INST, "orders cache")
    with pytest.raises(LookupError, match="ambiguous"):
        reader.resolve("twin")
    with pytest.raises(LookupError, match="names found: orders cache, twin"):
        reader.resolve("nope")
