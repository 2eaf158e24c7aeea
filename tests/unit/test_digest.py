"""The per-node-day digest: counts of real Redis messages (4.0 and 7.x wording), levels, first and last times."""

from __future__ import annotations

import random
from datetime import date

import pytest

from shared.digest import CATEGORIES, PATTERNS, Digest, LineClock, head_time, notable, parse_metadata
from tests.localcloud.redislog_text import generate_day

ID40 = "0c6e8b0b6b5d8f6f4e7c0c3b8a2a1e9d5f4c3b2a"  # a 40-hex node / replication id
ID7 = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"
CLIENT40 = ("id=7 addr=192.168.0.9:50042 fd=9 name= age=120 idle=0 flags=N db=0 sub=0 psub=0 multi=-1 qbuf=0 "
            "qbuf-free=0 obl=0 oll=2048 omem=268435456 events=rw cmd=monitor")
CLIENT7 = ("id=7 addr=192.168.0.9:50042 laddr=192.168.0.5:6379 fd=9 name= age=120 idle=0 flags=O db=0 sub=0 psub=0 "
           "ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=2048 "
           "omem=268435456 tot-mem=269000000 events=rw cmd=monitor user=default redir=-1 resp=2 lib-name= lib-ver=")

# (category, line): the messages as Redis 4.0 (no year in the time, "slave") and 7.x (year, "replica") write them,
# texts from the Redis sources cited in shared/digest.py, values made up. The level is the one each version logs.
V40 = [
    ("master_lost", "3035:S 07 Aug 04:49:07.332 # Connection with master lost."),
    ("master_timeout", "3035:S 07 Aug 04:50:07.101 # MASTER timeout: no data nor PING received..."),
    ("master_unreachable", "3035:S 07 Aug 04:50:08.002 # Unable to connect to MASTER: Connection refused"),
    ("replica_lost", "2117:M 07 Aug 04:49:07.330 # Connection with slave 192.168.0.12:6379 lost."),
    ("full_resync", f"3035:S 07 Aug 04:50:09.410 * Full resync from master: {ID40}:1"),
    ("full_resync", "2117:M 07 Aug 04:50:09.400 * Full resync requested by slave 192.168.0.12:6379"),
    ("partial_resync_refused", "3035:S 07 Aug 04:50:09.405 * Partial resynchronization not possible "
                               "(no cached master)"),
    ("partial_resync_refused", f"2117:M 07 Aug 04:50:09.399 * Partial resynchronization not accepted: Replication "
                               f"ID mismatch (Slave asked for '{ID7}', my replication IDs are '{ID40}' and "
                               f"'0000000000000000000000000000000000000000')"),
    ("partial_resync_refused", "2117:M 07 Aug 04:50:09.398 * Unable to partial resync with slave 192.168.0.12:6379 "
                               "for lack of backlog (Slave request was: 5000001)."),
    ("replica_timeout", "2117:M 07 Aug 04:51:00.000 # Disconnecting timedout slave: 192.168.0.12:6379"),
    ("sync_finished", "3035:S 07 Aug 04:50:10.120 * MASTER <-> SLAVE sync: Finished with success"),
    ("role_change", f"3035:M 07 Aug 05:00:00.001 * MASTER MODE enabled (user request from '{CLIENT40}')"),
    ("role_change", f"2117:S 07 Aug 05:00:01.002 * SLAVE OF 192.168.0.13:6379 enabled (user request from "
                    f"'{CLIENT40}')"),
    ("role_change", f"2117:M 07 Aug 05:00:02.003 # Configuration change detected. Reconfiguring myself as a "
                    f"replica of {ID40}"),
    ("failover", "3035:S 07 Aug 05:00:03.004 # Failover election won: I'm the new master."),
    ("failover_timeout", "3035:S 07 Aug 05:00:04.005 # Manual failover timed out."),
    ("cluster_fail", "2117:M 07 Aug 05:00:05.006 # Cluster state changed: fail"),
    ("cluster_ok", "2117:M 07 Aug 05:00:06.007 # Cluster state changed: ok"),
    ("node_failing", f"2117:M 07 Aug 05:00:07.008 * Marking node {ID40} as failing (quorum reached)."),
    ("rdb_error", "2117:M 07 Aug 06:00:00.001 # Background saving error"),
    ("rdb_error", "2117:M 07 Aug 06:00:01.002 # Background saving terminated by signal 9"),
    ("rdb_error", "2117:M 07 Aug 06:00:02.003 # Can't save in background: fork: Cannot allocate memory"),
    ("rdb_error", "4242:C 07 Aug 06:00:03.004 # Write error saving DB on disk: No space left on device"),
    ("rdb_error", "4242:C 07 Aug 06:00:04.005 # Failed opening the RDB file dump.rdb (in server root dir /data) "
                  "for saving: Permission denied"),
    ("aof_error", "2117:M 07 Aug 06:10:00.001 # Background AOF rewrite terminated with error"),
    ("aof_error", "2117:M 07 Aug 06:10:01.002 # Background AOF rewrite terminated by signal 9"),
    ("aof_error", "2117:M 07 Aug 06:10:02.003 # Error writing to the AOF file: No space left on device"),
    ("aof_error", "2117:M 07 Aug 06:10:03.004 # Short write while writing to the AOF file: (nwritten=1024, "
                  "expected=2048)"),
    ("aof_error", "2117:M 07 Aug 06:10:04.005 # Can't rewrite append only file in background: fork: Cannot "
                  "allocate memory"),
    ("aof_slow_fsync", "2117:M 07 Aug 06:10:05.006 * Asynchronous AOF fsync is taking too long (disk is busy?). "
                       "Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."),
    ("oom", "2117:M 07 Aug 07:00:00.001 # Out Of Memory allocating 16384 bytes!"),
    ("client_output_buffer", f"2117:M 07 Aug 07:00:01.002 # Client {CLIENT40} scheduled to be closed ASAP for "
                             f"overcoming of output buffer limits."),
    ("client_query_buffer", "2117:M 07 Aug 07:00:02.003 # Closing client that reached max query buffer length: "
                            "id=9 addr=192.168.0.9:50100 fd=10 name= age=3 idle=0 flags=N db=0 sub=0 psub=0 "
                            "multi=-1 qbuf=1073741824 qbuf-free=0 obl=0 oll=0 omem=0 events=r cmd=NULL (qbuf "
                            "initial bytes: \"*3\\r\\n$3\\r\\nset\\r\\n$3\\r\\nkey\\r\\n$1073\")"),
    ("restart", "1:C 07 Aug 08:00:00.001 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"),
    ("shutdown", "2117:M 07 Aug 07:59:59.001 # User requested shutdown..."),
    ("shutdown", "2117:signal-handler (1723017599) Received SIGTERM scheduling shutdown..."),
    ("shutdown", "2117:signal-handler (1723017600) Received SIGINT scheduling shutdown..."),
    ("slow_script", "2117:M 07 Aug 09:00:00.001 # Lua slow script detected: still in execution after 5000 "
                    "milliseconds. You can try killing the script using the SCRIPT KILL command."),
    ("security_attack", "2117:M 07 Aug 09:00:01.002 # Possible SECURITY ATTACK detected. It looks like somebody "
                        "is sending POST or Host: commands to Redis. This is likely due to an attacker attempting "
                        "to use Cross Protocol Scripting to compromise your Redis instance. Connection aborted."),
]
V7 = [
    ("master_lost", "3035:S 07 Aug 2024 04:49:07.332 * Connection with master lost."),
    ("master_timeout", "3035:S 07 Aug 2024 04:50:07.101 # MASTER timeout: no data nor PING received..."),
    ("master_unreachable", "3035:S 07 Aug 2024 04:50:08.002 # Unable to connect to MASTER: Connection refused"),
    ("replica_lost", "2117:M 07 Aug 2024 04:49:07.330 * Connection with replica 192.168.0.12:6379 lost."),
    ("full_resync", f"3035:S 07 Aug 2024 04:50:09.410 * Full resync from master: {ID7}:0"),
    ("full_resync", "2117:M 07 Aug 2024 04:50:09.400 * Full resync requested by replica 192.168.0.12:6379"),
    ("partial_resync_refused", "3035:S 07 Aug 2024 04:50:09.405 * Partial resynchronization not possible "
                               "(no cached master)"),
    ("partial_resync_refused", "2117:M 07 Aug 2024 04:50:09.399 * Partial resynchronization not accepted: "
                               "Requested offset for second ID was 5000, but I can reply up to 4000"),
    ("partial_resync_refused", "2117:M 07 Aug 2024 04:50:09.398 * Unable to partial resync with replica "
                               "192.168.0.12:6379 for lack of backlog (Replica request was: 5000001)."),
    ("replica_timeout", "2117:M 07 Aug 2024 04:51:00.000 # Disconnecting timedout replica (streaming sync): "
                        "192.168.0.12:6379"),
    ("replica_timeout", "2117:M 07 Aug 2024 04:51:00.001 # Disconnecting timedout replica (full sync): "
                        "192.168.0.14:6379"),
    ("sync_finished", "3035:S 07 Aug 2024 04:50:10.120 * MASTER <-> REPLICA sync: Finished with success"),
    ("role_change", f"3035:M 07 Aug 2024 05:00:00.001 * MASTER MODE enabled (user request from '{CLIENT7}')"),
    ("role_change", f"3035:M 07 Aug 2024 05:00:00.002 * MASTER MODE enabled (failover request from "
                    f"'{CLIENT7}')"),
    ("role_change", f"2117:S 07 Aug 2024 05:00:01.002 * REPLICAOF 192.168.0.13:6379 enabled (user request from "
                    f"'{CLIENT7}')"),
    ("role_change", f"2117:M 07 Aug 2024 05:00:02.003 * Configuration change detected. Reconfiguring myself as a "
                    f"replica of {ID7} ()"),
    ("role_change", f"2117:S 07 Aug 2024 05:00:02.004 * I'm a sub-replica! Reconfiguring myself as a replica of "
                    f"grandmaster {ID7} ()"),
    ("failover", "3035:S 07 Aug 2024 05:00:03.004 * Failover election won: I'm the new master."),
    ("failover_timeout", "3035:S 07 Aug 2024 05:00:04.005 # Manual failover timed out."),
    ("cluster_fail", "2117:M 07 Aug 2024 05:00:05.006 # Cluster state changed: fail"),
    ("cluster_ok", "2117:M 07 Aug 2024 05:00:06.007 * Cluster state changed: ok"),
    ("node_failing", f"2117:M 07 Aug 2024 05:00:07.008 * Marking node {ID7} () as failing (quorum reached)."),
    ("rdb_error", "2117:M 07 Aug 2024 06:00:00.001 # Background saving error"),
    ("rdb_error", "2117:M 07 Aug 2024 06:00:01.002 # Background saving terminated by signal 9"),
    ("rdb_error", "2117:M 07 Aug 2024 06:00:02.003 # Can't save in background: fork: Cannot allocate memory"),
    ("rdb_error", "4242:C 07 Aug 2024 06:00:03.004 # Write error while saving DB to the disk(fflush): No space "
                  "left on device"),
    ("rdb_error", "4242:C 07 Aug 2024 06:00:04.005 # Failed opening the temp RDB file temp-4242.rdb (in server "
                  "root dir /data) for saving: No space left on device"),
    ("aof_error", "2117:M 07 Aug 2024 06:10:00.001 # Background AOF rewrite terminated with error"),
    ("aof_error", "2117:M 07 Aug 2024 06:10:01.002 # Background AOF rewrite terminated by signal 9"),
    ("aof_error", "2117:M 07 Aug 2024 06:10:02.003 # Error writing to the AOF file: No space left on device"),
    ("aof_error", "2117:M 07 Aug 2024 06:10:03.004 # Short write while writing to the AOF file: (nwritten=1024, "
                  "expected=2048)"),
    ("aof_error", "2117:M 07 Aug 2024 06:10:04.005 # Can't rewrite append only file in background: fork: "
                  "Cannot allocate memory"),
    ("aof_slow_fsync", "2117:M 07 Aug 2024 06:10:05.006 * Asynchronous AOF fsync is taking too long (disk is "
                       "busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down "
                       "Redis."),
    ("oom", "2117:M 07 Aug 2024 07:00:00.001 # Out Of Memory allocating 16384 bytes!"),
    ("client_output_buffer", f"2117:M 07 Aug 2024 07:00:01.002 # Client {CLIENT7} scheduled to be closed ASAP "
                             f"for overcoming of output buffer limits."),
    ("client_output_buffer", f"2117:M 07 Aug 2024 07:00:01.003 # Client {CLIENT7} closed for overcoming of output "
                             f"buffer limits."),
    ("client_query_buffer", "2117:M 07 Aug 2024 07:00:02.003 # Closing client that reached max query buffer "
                            "length: id=9 addr=192.168.0.9:50100 laddr=192.168.0.5:6379 fd=10 name= age=3 idle=0 "
                            "flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=1073741824 qbuf-free=0 argv-mem=0 "
                            "cmd=NULL user=default (qbuf initial bytes: \"*3\\r\\n$3\\r\\nset\")"),
    ("restart", "1:C 07 Aug 2024 08:00:00.001 * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"),
    ("shutdown", "2117:M 07 Aug 2024 07:59:59.001 * User requested shutdown..."),
    ("shutdown", "2117:signal-handler (1723017599) Received SIGTERM scheduling shutdown..."),
    ("slow_script", "2117:M 07 Aug 2024 09:00:00.001 # Lua slow script detected: still in execution after 5000 "
                    f"milliseconds. You can try killing the script using the SCRIPT KILL command. Script SHA1 is: "
                    f"{ID40}"),  # 6.2
    ("slow_script", "2117:M 07 Aug 2024 09:00:00.002 # Slow script detected: still in execution after 5000 "
                    "milliseconds. You can try killing the script using the SCRIPT KILL command. Script name is: "
                    f"f_{ID7}."),
    ("security_attack", "2117:M 07 Aug 2024 09:00:01.002 # Possible SECURITY ATTACK detected. It looks like "
                        "somebody is sending POST or Host: commands to Redis. This is likely due to an attacker "
                        "attempting to use Cross Protocol Scripting to compromise your Redis instance. Connection "
                        "from 192.168.0.66:41000 aborted."),
]
# A crash report: its opening line is raw (no head), and so are most of its lines; INFO's "# Server" is not a
# warning-level line.
CRASH40 = ["", "", "=== REDIS BUG REPORT START: Cut & paste starting from here ===",
           "2117:M 07 Aug 10:00:00.001 # Redis 4.0.14 crashed by signal: 11",
           "2117:M 07 Aug 10:00:00.002 # Crashed running the instruction at: 0x45f1e4",
           "", "------ INFO OUTPUT ------", "# Server", "redis_version:4.0.14", ""]
CRASH7 = ["", "", "=== REDIS BUG REPORT START: Cut & paste starting from here ===",
          "2117:M 07 Aug 2024 10:00:00.001 # Redis 7.2.4 crashed by signal: 11, si_code: 1",
          "2117:M 07 Aug 2024 10:00:00.002 # Accessing address: 0x10",
          "", "------ INFO OUTPUT ------", "# Server", "redis_version:7.2.4", ""]
# Lines that must count nothing but their level
PLAIN = [
    "2117:M 07 Aug 2024 11:00:00.001 * 1 changes in 900 seconds. Saving...",
    "2117:M 07 Aug 2024 11:00:00.002 * Background saving started by pid 4243",
    "4243:C 07 Aug 2024 11:00:00.100 * DB saved on disk",
    "2117:M 07 Aug 2024 11:00:00.200 * Background saving terminated with success",
    "2117:M 07 Aug 2024 11:00:01.000 - Accepted 192.168.0.9:50111",
    "2117:M 07 Aug 2024 11:00:01.001 - Client closed connection",
    "2117:M 07 Aug 2024 11:00:02.000 . Client id=8 closed the connection (a debug line, no buffer limit)",
    "3035:S 07 Aug 2024 11:00:03.000 * Connecting to MASTER 192.168.0.11:6379",
    "3035:S 07 Aug 2024 11:00:03.001 * MASTER <-> REPLICA sync started",
    "3035:S 07 Aug 2024 11:00:03.002 * Trying a partial resynchronization (request x:1).",
    "3035:S 07 Aug 2024 11:00:03.003 * Successful partial resynchronization with master.",
    "2117:M 07 Aug 2024 11:00:04.000 # Server initialized",
    "2117:M 07 Aug 2024 11:00:04.001 * Ready to accept connections tcp",
]


def build(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def digest_of(data: bytes, day: str = "2024-08-07", chunk: int = 1 << 20) -> dict:
    d = Digest(day)
    for i in range(0, len(data), chunk):
        d.feed(data[i:i + chunk])
    return d.result()


def expected_events(samples: list[tuple[str, str]], crashes: int) -> dict:
    counts: dict = {}
    for category, _ in samples:
        counts[category] = counts.get(category, 0) + 1
    if crashes:
        counts["crash"] = crashes
    return dict(sorted(counts.items()))


@pytest.mark.parametrize("category,line", V40 + V7)
def test_each_real_message_counts_into_its_category_and_nothing_else(category, line):
    result = digest_of(build([line]))
    assert result["events"] == {category: 1}
    assert result["lines"] == 1


def test_every_row_of_the_table_has_a_real_message_that_it_matches():
    lines = [line for _, line in V40 + V7] + CRASH40 + CRASH7
    for p in PATTERNS:
        assert any(p.text in line for line in lines), f"no test line for {p.text!r}"


def test_a_log_built_from_real_messages_gives_exactly_its_events_levels_and_times():
    samples = V40 + V7
    lines = [line for _, line in V7] + CRASH7 + PLAIN
    data = build(lines)
    result = digest_of(data)
    assert result["events"] == expected_events(V7, crashes=1)
    headed = [line for line in lines if line[:1].isdigit() and ":signal-handler" not in line]
    assert result["levels"] == {
        "debug": sum(" . " in line[:40] for line in headed), "verbose": sum(" - " in line[:40] for line in headed),
        "notice": sum(" * " in line[:40] for line in headed), "warning": sum(" # " in line[:40] for line in headed)}
    assert sum(result["levels"].values()) == len(headed)
    assert result["lines"] == len(lines)
    assert result["first"] == "2024-08-07T04:49:07.332" and result["last"] == "2024-08-07T11:00:04.001"
    assert len(samples) > 60


def test_redis_4_lines_take_the_year_from_the_files_day():
    data = build([line for _, line in V40] + CRASH40)
    result = digest_of(data)
    assert result["events"] == expected_events(V40, crashes=1)
    assert result["first"] == "2024-08-07T04:49:07.332"
    assert result["last"] == "2024-08-07T10:00:00.002"  # the crash report's last line with a head


def test_the_file_of_new_years_day_holding_new_years_eve_lines_gets_both_years_right():
    lines = ["9:M 31 Dec 23:59:59.998 * 1 changes in 3600 seconds. Saving...",
             "9:M 01 Jan 00:00:00.004 # Connection with slave 10.0.0.2:6379 lost."]
    result = digest_of(build(lines), day="2025-01-01")
    assert result["first"] == "2024-12-31T23:59:59.998" and result["last"] == "2025-01-01T00:00:00.004"
    # and the other way: a December file holding a line already in January
    assert head_time(b"9:M 01 Jan 00:00:00.004 * x", date(2024, 12, 31)) == "2025-01-01T00:00:00.004"
    assert head_time(b"9:M 29 Feb 10:00:00.000 * x", date(2024, 3, 1)) == "2024-02-29T10:00:00.000"
    assert head_time(b"9:M 31 Dec 2023 23:59:59.998 * x", date(2024, 1, 1)) == "2023-12-31T23:59:59.998"
    assert head_time(b"not a head", date(2024, 1, 1)) is None


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 997, 4096])
def test_chunk_boundaries_anywhere_give_the_same_result(chunk):
    data = build([line for _, line in V7] + CRASH7 + PLAIN)
    assert digest_of(data, chunk=chunk) == digest_of(data)


def test_random_chunk_sizes_over_a_generated_log_give_the_same_result():
    data = generate_day("seed", date(2024, 8, 7), 300_000, "M").content + build([line for _, line in V7])
    whole = digest_of(data)
    rng = random.Random(7)
    d, i = Digest("2024-08-07"), 0
    while i < len(data):
        n = rng.choice([1, 5, 80, 81, 4096, 65536])
        d.feed(memoryview(data)[i:i + n].tobytes())
        i += n
    assert d.result() == whole
    assert whole["lines"] == data.count(b"\n")
    assert sum(whole["levels"].values()) == whole["lines"] - 1  # the signal handler's line has no level


def test_a_last_line_without_newline_counts_and_an_empty_file_has_nothing():
    data = build(PLAIN)[:-1]
    assert digest_of(data)["lines"] == len(PLAIN)
    assert digest_of(data)["last"] == "2024-08-07T11:00:04.001"
    empty = Digest("2024-08-07").result()
    assert empty == {"v": 1, "day": "2024-08-07", "lines": 0, "levels": {"debug": 0, "verbose": 0, "notice": 0,
                     "warning": 0}, "events": {}, "first": None, "last": None}


def test_a_runaway_line_is_digested_without_holding_it_whole():
    line = b"2117:M 07 Aug 2024 07:00:01.002 # Client id=1 " + b"x" * (3 << 20) + b" closed for overcoming of " \
           b"output buffer limits.\n"
    d = Digest("2024-08-07")
    for i in range(0, len(line), 1 << 16):
        d.feed(line[i:i + (1 << 16)])
        assert len(d._carry) <= (1 << 20) + (1 << 16)
    d.feed(build(PLAIN))
    result = d.result()
    assert result["lines"] == 1 + len(PLAIN)
    assert result["levels"]["warning"] == 2  # the runaway line's level, and "Server initialized"


def test_feeding_after_the_result_is_refused():
    d = Digest("2024-08-07")
    d.result()
    with pytest.raises(ValueError):
        d.feed(b"x\n")


def test_metadata_is_compact_ascii_and_reads_back_to_the_same_result():
    d = Digest("2024-08-07")
    d.feed(build([line for _, line in V40 + V7] + CRASH7 + PLAIN))
    text = d.to_metadata()
    assert text.isascii() and len(text) < 1024
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:/+=@,~")
    assert parse_metadata(text, "2024-08-07") == d.result()
    assert Digest.from_metadata(text, "2024-08-07").to_metadata() == text
    assert Digest.from_dict(d.result()).result() == d.result()


def test_metadata_stays_under_1_kb_with_every_category_at_a_million():
    every = {"v": 1, "day": "2024-08-07", "lines": 10**9, "levels": dict.fromkeys(
        ("debug", "verbose", "notice", "warning"), 10**9), "events": dict.fromkeys(CATEGORIES, 999_999),
        "first": "2024-08-07T00:00:00.000", "last": "2024-08-07T23:59:59.999"}
    assert len(Digest.from_dict(every).to_metadata()) < 1024


def test_metadata_of_an_unknown_version_is_refused():
    with pytest.raises(ValueError):
        parse_metadata("v9 l=1", "2024-08-07")


def test_notable_keeps_warning_and_critical_events_only():
    result = digest_of(build([line for _, line in V7] + CRASH7))
    marked = notable(result)
    assert "replica_lost" not in marked and "cluster_ok" not in marked and "sync_finished" not in marked
    assert marked["crash"] == 1 and marked["oom"] == 1 and marked["role_change"] == 5
    assert set(marked) == {c for c, s in CATEGORIES.items() if s != "notice"}


def test_the_line_clock_agrees_with_head_time_on_every_kind_of_line():
    # lines that look like heads but are not come first: they must not spoil the clock's cache of dates
    lines = [b"9:M 07 Aug 2024 04:49:07.332 x not a level", b"9:M 07 Aug 04:49:07.332 x", b"9:m 07 Aug 2024 "
             b"04:49:07.332 * lower-case role", b"9:M 07 Aug 2O24 04:49:07.332 * x"]
    lines += [line.encode() for _, line in V40 + V7] + [line.encode() for line in CRASH40 + CRASH7 + PLAIN] + [
        b"9:M 31 Dec 23:59:59.998 * x", b"9:M 01 Jan 00:00:00.004 * x", b"9:X 31 Dec 2024 23:59:59.998 # x",
        b"12:M 07 Aug 2024 04:49:07.33 * short", b"ab:M 07 Aug 2024 04:49:07.332 * x", b"9:M 07 Aug 2024 04:49:07.332",
        b"9:M 07 Zzz 2024 04:49:07.332 * x", b"", b"9", b"1:signal-handler (1723017599) Received SIGTERM"]
    for day in (date(2024, 8, 7), date(2025, 1, 1), date(2024, 12, 31)):
        clock = LineClock(day)
        for line in lines * 2:  # twice: the second time from the cache
            expected = head_time(line, day)
            assert clock(line) == (expected.encode() if expected else None), line
