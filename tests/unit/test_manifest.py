"""Manifests and their checks on plain data: the fleet, readiness, building, amendments, the chain, objects."""

from __future__ import annotations

from datetime import date

from shared.ledger import Ledger, observe_topology, record_archived, record_missing, record_no_log
from shared.manifest import (
    amendments_for,
    build_manifest,
    day_ready,
    encode,
    fleet_for,
    open_entries,
    record_fleet,
    sha256,
)
from shared.verify import check_chain, check_object

TODAY = date(2026, 11, 23)


def ledger() -> Ledger:
    led = Ledger("i-1", "orders", "ha")
    observe_topology(led, [{"replication_ip": "10.0.0.1", "role": "master", "group_name": "g0"},
                           {"replication_ip": "10.0.0.2", "role": "slave", "group_name": "g0"}], TODAY, single=False)
    return led


def test_the_fleet_keeps_each_runs_instances_and_a_day_is_owed_by_the_runs_that_collected_it():
    fleet = record_fleet({}, "2026-11-22", [("i-1", "orders")], [("i-2", "old", "Redis 3.0 has no run logs")])
    fleet = record_fleet(fleet, "2026-11-23", [("i-1", "orders"), ("i-3", "new")], [])
    matched, skipped = fleet_for(fleet, "2026-11-22")
    assert matched == {"i-1": "orders", "i-3": "new"} and skipped == {}
    matched, skipped = fleet_for(fleet, "2026-11-21")
    assert set(matched) == {"i-1", "i-3"} and skipped["i-2"]["reason"] == "Redis 3.0 has no run logs"
    old = record_fleet(fleet, "2027-01-10", [], [])
    assert list(old["runs"]) == ["2027-01-10"], "runs older than 40 days are dropped"


def test_a_day_is_ready_when_every_owed_instance_has_it_settled_or_it_left_dcs_window():
    led = ledger()
    day = "2026-11-22"
    record_archived(led, "10.0.0.1", day, {"key": "k1", "bytes_in": 10, "bytes_out": 4, "sha256": "aa"})
    assert not day_ready(day, {"i-1": "orders"}, {"i-1": led}, TODAY)
    record_no_log(led, "10.0.0.2", day, {"job_id": "j"})
    assert day_ready(day, {"i-1": "orders"}, {"i-1": led}, TODAY)
    assert not day_ready(day, {"i-1": "orders", "i-9": "x"}, {"i-1": led, "i-9": None}, TODAY)
    assert day_ready("2026-11-10", {"i-9": "x"}, {"i-9": None}, TODAY), "past the window: written as it is"


def test_a_manifest_lists_every_node_with_its_record_and_amends_a_day_archived_late():
    led = ledger()
    day = "2026-11-16"
    record_archived(led, "10.0.0.1", day, {"key": "k1", "bytes_in": 10, "bytes_out": 4, "sha256": "aa",
                                           "digest": {"failover": 1}})
    record_missing(led, "10.0.0.2", day, "download truncated")
    doc = build_manifest(day, {"i-1": "orders"}, {"i-2": {"name": "old", "reason": "r"}}, {"i-1": led}, None, [],
                         "2026-11-25T00:00:00+00:00")
    (inst,) = doc["instances"]
    assert [n["state"] for n in inst["nodes"]] == ["archived", "missing"]
    assert inst["nodes"][0] == {"node": "10.0.0.1", "group": "g0", "role": "master", "state": "archived",
                                "key": "k1", "original_size": 10, "sha256": "aa", "stored_size": 4,
                                "digest": {"failover": 1}}
    assert inst["nodes"][1]["reason"] == "download truncated"
    assert doc["skipped"] == [{"instance_id": "i-2", "name": "old", "reason": "r"}]
    still_open = open_entries(doc)
    assert still_open == [{"day": day, "instance_id": "i-1", "node": "10.0.0.2"}]
    assert amendments_for(still_open, {"i-1": led}) == ([], still_open)
    record_archived(led, "10.0.0.2", day, {"key": "k2", "bytes_in": 8, "bytes_out": 3, "sha256": "bb"})
    (amended,), rest = amendments_for(still_open, {"i-1": led})
    assert rest == [] and amended["was"] == "missing" and amended["state"] == "archived" and amended["key"] == "k2"


def chain(*days):
    out, prev = [], None
    for day in days:
        data = encode({"day": day, "previous": prev})
        out.append((day, f"m/{day}.json", data))
        prev = {"day": day, "sha256": sha256(data)}
    return out


def test_an_intact_chain_has_no_problem_and_matches_its_head():
    manifests = chain("2026-11-20", "2026-11-21", "2026-11-22")
    head = {"day": "2026-11-22", "sha256": sha256(manifests[-1][2])}
    assert [p for _, _, p in check_chain(manifests, head, since=None, until=None)] == [None] * 3


def test_an_edited_manifest_breaks_the_next_link_and_an_edited_newest_one_the_head():
    manifests = chain("2026-11-20", "2026-11-21", "2026-11-22")
    head = {"day": "2026-11-22", "sha256": sha256(manifests[-1][2])}
    manifests[1] = (manifests[1][0], manifests[1][1], manifests[1][2].replace(b"}", b', "x": 1}', 1))
    found = [(d, p) for d, _, p in check_chain(manifests, head, since=None, until=None) if p]
    assert found == [("2026-11-22", found[0][1])] and "chain broken" in found[0][1]
    manifests[2] = (manifests[2][0], manifests[2][1], manifests[2][2] + b" ")
    found = [(d, s, p) for d, s, p in check_chain(manifests, head, since=None, until=None) if p]
    assert any(s == "manifest head" for _, s, _ in found)


def test_a_removed_manifest_is_reported_once_as_missing():
    manifests = chain("2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22")
    del manifests[1:3]
    found = [(d, p) for d, _, p in check_chain(manifests, None, since=None, until=None) if p]
    assert found == [("2026-11-20", "missing: no manifest for 2026-11-20..2026-11-21")]


def test_an_object_is_checked_for_presence_stored_size_and_checksum_metadata():
    entry = {"key": "k", "stored_size": 4, "sha256": "aa" * 32, "original_size": 10}
    assert check_object(entry, None) == "object missing: k"
    assert check_object(entry, {"content-length": "4", "sha256": "aa" * 32, "original-size": "10"}) is None
    assert check_object(entry, {"content-length": "4"}) is None, "a multipart copy carries no checksum metadata"
    assert "stored size 5" in check_object(entry, {"content-length": "5"})
    assert "sha256 metadata" in check_object(entry, {"content-length": "4", "sha256": "bb" * 32})
    assert "original-size metadata 11" in check_object(entry, {"content-length": "4", "original-size": "11"})
