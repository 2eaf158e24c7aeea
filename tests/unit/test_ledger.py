"""The node-day ledger's decisions on plain data: states, the window, topology changes, expiry, merging."""

from __future__ import annotations

import json
from datetime import date

import pytest

from shared.ledger import (
    ARCHIVED,
    FAILED,
    MISSING,
    NO_LOG,
    Ledger,
    MalformedLedger,
    archived_keys,
    learn_single_ip,
    merge,
    observe_topology,
    oldest_missing,
    query_time_for,
    record_archived,
    record_collect,
    record_missing,
    record_no_log,
    settle_expired,
    summary,
    up_to_date,
    window,
)

TODAY = date(2026, 11, 23)
YESTERDAY = "2026-11-22"


def ha_ledger() -> Ledger:
    ledger = Ledger("inst-1", "orders", "ha")
    observe_topology(ledger, [{"replication_ip": "10.0.0.1", "replication_id": "r1", "role": "master"},
                              {"replication_ip": "10.0.0.2", "replication_id": "r2", "role": "slave"}],
                     TODAY, single=False)
    return ledger


def archive(ledger: Ledger, ip: str, day: str) -> None:
    record_archived(ledger, ip, day, {"key": f"k/{ip}/{day}", "bytes_in": 10, "bytes_out": 5, "sha256": "ab"})


def test_window_is_the_seven_finished_days_dcs_still_holds():
    assert window(TODAY) == ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21",
                             YESTERDAY]


def test_a_new_instance_expects_every_node_for_the_whole_window():
    ledger = ha_ledger()
    assert {n.expected_from for n in ledger.nodes.values()} == {"2026-11-16"}
    assert len(ledger.missing(TODAY)) == 14
    assert oldest_missing(ledger, TODAY) == "2026-11-16"
    assert query_time_for(oldest_missing(None, TODAY), TODAY, 1) == 7


def test_up_to_date_only_when_every_nodes_yesterday_is_archived_or_no_log():
    ledger = ha_ledger()
    assert not up_to_date(None, TODAY)
    archive(ledger, "10.0.0.1", YESTERDAY)
    assert not up_to_date(ledger, TODAY), "the standby's yesterday is missing"
    record_no_log(ledger, "10.0.0.2", YESTERDAY, {"job_id": "j"})
    assert up_to_date(ledger, TODAY)


def test_the_window_reaches_back_to_the_oldest_missing_node_day():
    ledger = ha_ledger()
    for day in window(TODAY):
        archive(ledger, "10.0.0.1", day)
        if day >= "2026-11-20":
            archive(ledger, "10.0.0.2", day)
    for day in ("2026-11-16", "2026-11-17"):
        record_no_log(ledger, "10.0.0.2", day, {})
    assert oldest_missing(ledger, TODAY) == "2026-11-18"
    assert query_time_for(oldest_missing(ledger, TODAY), TODAY, 1) == 7
    archive(ledger, "10.0.0.2", "2026-11-18")
    assert query_time_for(oldest_missing(ledger, TODAY), TODAY, 1) == 7, "4 days back needs the 7-day window"
    archive(ledger, "10.0.0.2", "2026-11-19")
    assert oldest_missing(ledger, TODAY) is None
    assert query_time_for(None, TODAY, 1) == 1
    assert query_time_for("2026-11-21", TODAY, 1) == 3


def test_no_log_never_overrides_an_archived_day():
    ledger = ha_ledger()
    archive(ledger, "10.0.0.1", YESTERDAY)
    record_no_log(ledger, "10.0.0.1", YESTERDAY, {})
    assert ledger.nodes["10.0.0.1"].state(YESTERDAY) == ARCHIVED


def test_scale_out_expects_the_new_node_from_the_day_before_it_was_seen_and_scale_in_stops_expecting():
    ledger = ha_ledger()
    later = date(2026, 11, 25)
    changes = observe_topology(ledger, [{"replication_ip": "10.0.0.1"}, {"replication_ip": "10.0.0.3"}], later,
                               single=False)
    assert any("10.0.0.3 added" in c for c in changes) and any("10.0.0.2 no longer listed" in c for c in changes)
    assert ledger.nodes["10.0.0.3"].expected_from == "2026-11-24"
    assert ledger.nodes["10.0.0.2"].removed_on == "2026-11-25"
    expected = {(n.ip, d) for n, d, _ in ledger.node_days(window(later))}
    assert ("10.0.0.2", "2026-11-24") in expected and ("10.0.0.2", "2026-11-25") not in expected
    assert ("10.0.0.3", "2026-11-23") not in expected and ("10.0.0.3", "2026-11-24") in expected


def test_a_partial_listing_adds_nodes_without_removing_any():
    ledger = ha_ledger()
    observe_topology(ledger, [{"replication_ip": "10.0.0.1"}], TODAY, single=False, whole=False)
    assert all(n.removed_on is None for n in ledger.nodes.values())


def test_a_single_node_is_keyed_by_its_ip_once_a_listing_shows_it():
    ledger = Ledger("inst-2", "single", "single")
    observe_topology(ledger, [], TODAY, single=True)
    assert list(ledger.nodes) == [""]
    learn_single_ip(ledger, "10.0.0.9")
    assert list(ledger.nodes) == ["10.0.0.9"]
    archive(ledger, "", YESTERDAY)  # the single node answers to any entry's IP
    assert ledger.nodes["10.0.0.9"].state(YESTERDAY) == ARCHIVED
    observe_topology(ledger, [], TODAY, single=True)
    assert list(ledger.nodes) == ["10.0.0.9"]


def test_a_missing_day_leaving_the_window_fails_with_the_last_reason_known():
    ledger = ha_ledger()
    record_collect(ledger, "10.0.0.2", "CreateRedislog: 500 DCS.5000")
    record_missing(ledger, "10.0.0.1", "2026-11-16", "download truncated")
    archive(ledger, "10.0.0.2", "2026-11-17")
    failed = settle_expired(ledger, date(2026, 11, 25))
    assert ("10.0.0.1", "2026-11-16") in failed and ("10.0.0.2", "2026-11-16") in failed
    assert ("10.0.0.2", "2026-11-17") not in failed
    assert "download truncated" in ledger.nodes["10.0.0.1"].days["2026-11-16"]["reason"]
    assert "DCS.5000" in ledger.nodes["10.0.0.2"].days["2026-11-16"]["reason"]
    assert ledger.nodes["10.0.0.2"].state("2026-11-16") == FAILED


def test_an_accepted_collection_clears_the_nodes_last_refusal():
    ledger = ha_ledger()
    record_collect(ledger, "10.0.0.2", "busy")
    record_collect(ledger, "10.0.0.2", None)
    assert ledger.nodes["10.0.0.2"].last_error is None and ledger.nodes["10.0.0.2"].collect_failures == 0


def test_merge_keeps_the_stronger_record_of_each_node_day():
    stored, mine = ha_ledger(), ha_ledger()
    archive(stored, "10.0.0.1", YESTERDAY)
    record_no_log(mine, "10.0.0.1", YESTERDAY, {})
    record_missing(stored, "10.0.0.2", YESTERDAY, "truncated")
    record_no_log(mine, "10.0.0.2", YESTERDAY, {})
    merged = merge(stored, mine)
    assert merged.nodes["10.0.0.1"].state(YESTERDAY) == ARCHIVED
    assert merged.nodes["10.0.0.2"].state(YESTERDAY) == NO_LOG


def test_summary_counts_states_and_names_the_missing():
    ledger = ha_ledger()
    archive(ledger, "10.0.0.1", YESTERDAY)
    record_no_log(ledger, "10.0.0.2", YESTERDAY, {})
    counts = summary(ledger, TODAY)
    assert (counts["archived"], counts["no_log"], counts["failed"], counts["missing"]) == (1, 1, 0, 12)
    assert "10.0.0.1 2026-11-16" in counts["missing_node_days"]
    assert ledger.day_settled(YESTERDAY) and not ledger.day_settled("2026-11-21")
    assert archived_keys(ledger) == {f"k/10.0.0.1/{YESTERDAY}"}


def test_round_trip_through_json():
    ledger = ha_ledger()
    archive(ledger, "10.0.0.1", YESTERDAY)
    again = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert again.to_dict() == ledger.to_dict()
    assert again.nodes["10.0.0.2"].state(YESTERDAY) == MISSING


@pytest.mark.parametrize("data", [[], {"schema": 2, "instance_id": "x", "nodes": {}},
                                  {"schema": 1, "nodes": {}},
                                  {"schema": 1, "instance_id": "x", "nodes": {"ip": {"days": {"d": {}}}}},
                                  {"schema": 1, "instance_id": "x", "nodes": {"ip": {"days": []}}}])
def test_a_malformed_ledger_is_refused_with_where(data):
    with pytest.raises(MalformedLedger, match="ledger"):
        Ledger.from_dict(data, where="ledger")
