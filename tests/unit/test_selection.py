"""plan_copies: which listed files to copy where, and why a partial copy never stands as a day's final archive."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from shared.dcs import LogEntry, log_day_of
from shared.keys import file_key
from shared.selection import FINAL, PARTIAL, Plan, is_settled, log_day, plan_copies

PREFIX = "redis-run-logs/"
INSTANCE = "i-1"
TODAY = "2026-11-22"  # the log day of the job's requested_at
YESTERDAY = "2026-11-21"
EARLIER = "2026-11-16"
CST = timezone(timedelta(hours=8))


def entry(eid: str, day: str = YESTERDAY, status: str = "succeed", ip: str = "192.168.0.1",
          group: str = "group-0", file_name: str = "") -> LogEntry:
    return LogEntry(eid, file_name or f"redis_{ip}_{day}.log", status, day, ip, group)


def key_of(e: LogEntry) -> object:
    return file_key(PREFIX, INSTANCE, e.day, e.group_name, e.file_name)


def plan(entries: list, *, before: tuple = (), archived: set | None = None, compression: str = "gzip",
         open_day: bool = False, collection_day: str = TODAY) -> Plan:
    return plan_copies(entries, entries_before=before, collection_day=collection_day,
                       archived_keys=archived or set(), archive_prefix=PREFIX, instance_id=INSTANCE,
                       compression=compression, open_day=open_day)


# --- finished days ----------------------------------------------------------------------------------

def test_this_collections_file_of_a_finished_day_is_copied_as_final():
    e = entry("new")
    p = plan([e])
    assert len(p.copies) == 1
    copy = p.copies[0]
    assert (copy.entry, copy.kind, copy.obsolete) == (e, FINAL, ())
    assert copy.key == f"{PREFIX}{INSTANCE}/{YESTERDAY}/group-0/redis_192.168.0.1_{YESTERDAY}.log.gz"
    assert not p.complete


def test_uncompressed_final_key_has_no_gz_suffix():
    e = entry("new")
    assert plan([e], compression="none").copies[0].key == key_of(e).final("none")
    assert not plan([e], compression="none").copies[0].key.endswith(".gz")


def test_every_finished_day_still_held_is_archived_not_only_yesterday():
    days = [(datetime(2026, 11, 22) - timedelta(days=n)).date().isoformat() for n in range(1, 8)]
    entries = [entry(f"e{n}", day=d) for n, d in enumerate(days)]
    p = plan(entries)
    assert sorted(c.entry.day for c in p.copies) == sorted(days)
    assert all(c.kind == FINAL for c in p.copies)


def test_one_copy_per_node_and_day():
    entries = [entry("a", ip="10.0.0.1"), entry("b", ip="10.0.0.2", group="group-1"),
               entry("c", ip="10.0.0.1", day=EARLIER)]
    p = plan(entries)
    assert sorted(c.entry.id for c in p.copies) == ["a", "b", "c"]
    assert len({c.key for c in p.copies}) == 3


def test_copies_are_planned_in_key_order_whatever_the_listing_order():
    entries = [entry("z", ip="10.0.0.9"), entry("a", ip="10.0.0.1"), entry("m", ip="10.0.0.5")]
    first = [c.key for c in plan(entries).copies]
    second = [c.key for c in plan(list(reversed(entries))).copies]
    assert first == second == sorted(first)


# --- already archived ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [0, 1])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_an_archived_final_in_either_compression_costs_nothing(variant, compression):
    e = entry("new")
    archived_key = key_of(e).final_variants()[variant]
    p = plan([e], archived={archived_key}, compression=compression)
    assert p.copies == []
    assert len(p.archived) == 1
    assert p.archived[0].key == archived_key
    assert p.complete


def test_an_archived_final_also_covers_older_copies_still_listed():
    e_old, e_new = entry("old"), entry("new")
    p = plan([e_old, e_new], before=("old",), archived={key_of(e_new).final("gzip")})
    assert p.copies == [] and len(p.archived) == 1 and p.skipped == []


def test_archived_final_needs_no_new_collection():
    # only an old entry, but the day is archived: nothing to prove, nothing to do
    e = entry("old")
    p = plan([e], before=("old",), archived={key_of(e).final("gzip")})
    assert p.copies == [] and p.skipped == [] and len(p.archived) == 1
    assert p.complete


def test_an_archived_partial_alone_does_not_count_as_archived():
    e = entry("new")
    p = plan([e], archived={key_of(e).partial("gzip")})
    assert len(p.copies) == 1 and p.copies[0].kind == FINAL
    assert p.archived == []


def test_keys_of_other_nodes_do_not_count_as_archived():
    e = entry("new", ip="10.0.0.1")
    other = entry("x", ip="10.0.0.2")
    assert len(plan([e], archived={key_of(other).final("gzip")}).copies) == 1


# --- a partial copy never becomes final -----------------------------------------------------------------------

def test_a_file_listed_before_the_collection_is_never_final():
    e = entry("old")
    p = plan([e], before=("old",))
    assert p.copies == []
    assert len(p.skipped) == 1
    assert p.skipped[0].reason.startswith("unproven")
    assert p.complete  # a later collection covering the day archives it; this job cannot


def test_a_file_listed_before_the_collection_is_never_final_even_with_open_day():
    e = entry("old")
    assert plan([e], before=("old",), open_day=True).copies == []


def test_a_file_collected_on_its_own_day_is_not_copied_by_default():
    e = entry("new", day=TODAY)
    p = plan([e])
    assert p.copies == []
    assert len(p.skipped) == 1 and "open day" in p.skipped[0].reason


def test_a_file_collected_on_its_own_day_is_only_ever_partial():
    e = entry("new", day=TODAY)
    p = plan([e], open_day=True)
    assert [(c.entry, c.kind) for c in p.copies] == [(e, PARTIAL)]
    assert p.copies[0].key == key_of(e).partial("gzip")
    assert p.copies[0].key.endswith(".partial.gz")
    assert p.copies[0].obsolete == ()


def test_open_day_partial_key_without_compression():
    e = entry("new", day=TODAY)
    assert plan([e], open_day=True, compression="none").copies[0].key == key_of(e).stem + ".partial"


def test_an_old_copy_of_yesterday_next_to_a_new_one_uses_the_new_one():
    old, new = entry("zzz-old"), entry("aaa-new")  # ids chosen so that the old one sorts last
    p = plan([old, new], before=("zzz-old",))
    assert [(c.entry.id, c.kind) for c in p.copies] == [("aaa-new", FINAL)]


def test_a_day_after_the_collection_day_is_never_final():
    e = entry("new", day="2026-11-23")
    p = plan([e], open_day=True)
    assert p.copies == []
    assert len(p.skipped) == 1


def test_the_collection_day_decides_not_the_entry_being_new():
    # same new entry: final when its day ended before the collection, never when collected on that day
    e = entry("new", day=YESTERDAY)
    assert plan([e], collection_day=TODAY).copies[0].kind == FINAL
    assert plan([e], collection_day=YESTERDAY, open_day=True).copies[0].kind == PARTIAL
    assert plan([e], collection_day=YESTERDAY).copies == []


# --- a final replaces a partial ---------------------------------------------------------------------------------

def test_a_final_copy_names_the_archived_partials_it_replaces():
    e = entry("new")
    k = key_of(e)
    archived = {k.partial("gzip"), k.partial("none"), "unrelated/key"}
    p = plan([e], archived=archived)
    assert len(p.copies) == 1
    assert p.copies[0].kind == FINAL
    assert set(p.copies[0].obsolete) == {k.partial("gzip"), k.partial("none")}


def test_a_final_copy_with_no_partial_archived_replaces_nothing():
    assert plan([entry("new")]).copies[0].obsolete == ()


def test_an_open_day_partial_is_written_again_over_an_earlier_partial():
    e = entry("new", day=TODAY)
    p = plan([e], archived={key_of(e).partial("gzip")}, open_day=True)
    assert [c.kind for c in p.copies] == [PARTIAL]


# --- failed and unfinished collections ---------------------------------------------------------------------------

def test_a_failed_collection_of_a_finished_day_is_reported_failed():
    e = entry("new", status="failed")
    p = plan([e])
    assert p.copies == []
    assert [n.entry for n in p.failed] == [e]
    assert not p.complete


@pytest.mark.parametrize("status", ["collecting", "creating", "", "unknown"])
def test_an_unfinished_collection_is_waiting(status):
    e = entry("new", status=status)
    p = plan([e])
    assert p.copies == []
    assert [n.entry for n in p.waiting] == [e]
    assert not p.complete


def test_a_succeeded_copy_wins_over_a_failed_one_of_the_same_node_and_day():
    ok, bad = entry("b-ok"), entry("a-bad", status="failed")
    p = plan([bad, ok])
    assert [c.entry.id for c in p.copies] == ["b-ok"]
    assert p.failed == []


def test_a_succeeded_copy_is_copied_even_while_another_is_collecting():
    p = plan([entry("ok"), entry("busy", status="collecting")])
    assert [c.entry.id for c in p.copies] == ["ok"]
    assert p.waiting == []


def test_collecting_wins_over_failed_when_nothing_succeeded():
    p = plan([entry("a", status="failed"), entry("b", status="collecting")])
    assert len(p.waiting) == 1 and p.failed == []


def test_an_old_success_does_not_rescue_a_failed_new_collection():
    p = plan([entry("old"), entry("new", status="failed")], before=("old",))
    assert p.copies == []
    assert [n.entry.id for n in p.failed] == ["new"]


def test_several_new_copies_of_one_node_and_day_give_one_copy():
    entries = [entry("c1"), entry("c2"), entry("c3")]
    p = plan(entries)
    assert len(p.copies) == 1
    assert p.copies[0].entry.id in {"c1", "c2", "c3"}


def test_failed_open_day_collection_is_not_a_reason_to_retry():
    p = plan([entry("new", day=TODAY, status="failed")], open_day=True)
    assert p.copies == [] and p.failed == []
    assert p.complete


# --- unusable entries ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("day, file_name", [("", "redis.log"), ("yesterday", "redis.log"), ("2026-11-21", "")])
def test_an_entry_without_a_day_or_file_name_is_skipped(day, file_name):
    e = LogEntry("x", file_name, "succeed", day, "10.0.0.1", "g")
    p = plan([e])
    assert p.copies == []
    assert len(p.skipped) == 1 and p.skipped[0].reason.startswith("unusable entry")


def test_empty_listing_is_a_complete_empty_plan():
    p = plan([])
    assert (p.copies, p.archived, p.failed, p.waiting, p.skipped) == ([], [], [], [], [])
    assert p.complete


def test_entries_may_be_a_generator():
    assert len(plan(iter([entry("a")])).copies) == 1


# --- invariants over many generated listings ------------------------------------------------------------------------

def test_generated_listings_never_plan_a_partial_copy_as_final():
    rng = random.Random(7)
    statuses = ["succeed", "succeed", "succeed", "failed", "collecting"]
    for _ in range(400):
        entries, before, archived = [], set(), set()
        for n in range(rng.randint(0, 12)):
            day = (datetime(2026, 11, 22) + timedelta(days=rng.randint(-8, 1))).date().isoformat()
            e = entry(f"id{n:02d}-{rng.random():.6f}", day=day, status=rng.choice(statuses),
                      ip=rng.choice(["10.0.0.1", "10.0.0.2"]))
            entries.append(e)
            if rng.random() < 0.4:
                before.add(e.id)
            k = key_of(e)
            if rng.random() < 0.15:
                archived.add(rng.choice(k.final_variants()))
            if rng.random() < 0.15:
                archived.add(rng.choice(k.partial_variants()))
        open_day = rng.random() < 0.5
        compression = rng.choice(["gzip", "none"])
        p = plan(entries, before=tuple(before), archived=archived, open_day=open_day, compression=compression)

        seen_keys = [c.key for c in p.copies]
        assert len(seen_keys) == len(set(seen_keys))
        for c in p.copies:
            k = key_of(c.entry)
            assert c.entry.status == "succeed"
            assert c.entry.id not in before
            assert not (set(k.final_variants()) & archived)
            if c.kind == FINAL:
                assert c.entry.day < TODAY
                assert c.key == k.final(compression)
                assert set(c.obsolete) == set(k.partial_variants()) & archived
            else:
                assert c.kind == PARTIAL and open_day and c.entry.day == TODAY
                assert c.key == k.partial(compression)
        # every node/day is accounted for exactly once
        stems = {key_of(e).stem for e in entries}
        notes = p.archived + p.failed + p.waiting + p.skipped
        accounted = [key_of(c.entry).stem for c in p.copies] + [key_of(n.entry).stem for n in notes]
        assert sorted(accounted) == sorted(stems)


# --- is_settled and log_day ------------------------------------------------------------------------------------------

def test_settled_when_every_entry_succeeded_or_failed():
    assert is_settled([entry("a"), entry("b", status="failed")])


@pytest.mark.parametrize("status", ["collecting", "", "SUCCEED", "pending"])
def test_not_settled_while_any_entry_has_another_status(status):
    assert not is_settled([entry("a"), entry("b", status=status)])


def test_an_empty_listing_is_settled():
    assert is_settled([])


@pytest.mark.parametrize("moment, tz, day", [
    (datetime(2026, 11, 21, 15, 59, 59, tzinfo=timezone.utc), CST, "2026-11-21"),
    (datetime(2026, 11, 21, 16, 0, 0, tzinfo=timezone.utc), CST, "2026-11-22"),
    (datetime(2026, 11, 21, 16, 0, 0), CST, "2026-11-22"),  # naive means UTC
    (datetime(2026, 11, 21, 23, 59, 59, tzinfo=timezone.utc), timezone.utc, "2026-11-21"),
    (datetime(2026, 11, 22, 0, 0, 0, tzinfo=timezone.utc), timezone.utc, "2026-11-22"),
    (datetime(2026, 11, 22, 4, 59, 59, tzinfo=timezone.utc), timezone(-timedelta(hours=5)), "2026-11-21"),
    (datetime(2026, 11, 22, 5, 0, 0, tzinfo=timezone.utc), timezone(-timedelta(hours=5)), "2026-11-22"),
    (datetime(2026, 11, 22, 0, 30, tzinfo=CST), timezone.utc, "2026-11-21"),
    (datetime(2026, 12, 31, 16, 0, tzinfo=timezone.utc), CST, "2027-01-01"),
    (datetime(2028, 2, 28, 16, 0, tzinfo=timezone.utc), CST, "2028-02-29"),
])
def test_log_day_is_the_day_in_the_log_timezone(moment, tz, day):
    assert log_day(moment, tz) == day


def test_a_job_requested_just_after_midnight_local_treats_yesterday_as_finished():
    requested = datetime(2026, 11, 21, 16, 0, 5, tzinfo=timezone.utc)  # 00:00:05 on the 22nd in +08:00
    collection_day = log_day(requested, CST)
    p = plan([entry("new", day="2026-11-21")], collection_day=collection_day)
    assert [c.kind for c in p.copies] == [FINAL]


def test_a_job_requested_just_before_midnight_local_leaves_the_day_open():
    requested = datetime(2026, 11, 21, 15, 59, 55, tzinfo=timezone.utc)  # 23:59:55 on the 21st in +08:00
    collection_day = log_day(requested, CST)
    p = plan([entry("new", day="2026-11-21")], collection_day=collection_day)
    assert p.copies == []


@pytest.mark.parametrize("name, time, day", [
    ("redis_192.168.0.142_2021-04-16.log", "2021-04-16", "2021-04-16"),
    ("redis_192.168.0.142_2021-04-16.log", "2021-04-22", "2021-04-16"),
    ("redis_192.168.0.142_2021-04-16.log", "2021-04-22 10:00:00", "2021-04-16"),
    ("redis-run.log", "2021-04-22", "2021-04-22"),
    ("redis_10.0.0.1_20210416.log", "2021-04-16T01:00:00Z", "2021-04-16"),
])
def test_the_log_day_is_the_file_names_day_else_the_listing_time(name, time, day):
    entry = LogEntry("e", name, "succeed", log_day_of(name, time), "10.0.0.1", "g", time)
    assert entry.day == day
    assert entry.day_disagrees == (time[:10] != day)
