"""Which instances qualify (tags, Redis >= 4.0, RUNNING) and which replicas are collected."""

from __future__ import annotations

import pytest

from shared.dcs import Instance, Replica
from shared.discovery import MIN_VERSION, Skipped, parse_version, qualify, replicas_to_collect, skip_reason

TAGS = (("archive-logs", "true"), ("team", "dba"))


def inst(instance_id: str = "i-1", *, engine: str = "Redis", version: str = "5.0", status: str = "RUNNING",
         tags: tuple = (("archive-logs", "true"), ("team", "dba")), name: str = "") -> Instance:
    return Instance(instance_id, name or f"name-{instance_id}", engine, version, status, tags)


def test_redis_5_running_with_all_tags_qualifies():
    assert skip_reason(inst(), TAGS) is None


def test_extra_tags_on_the_instance_do_not_matter():
    assert skip_reason(inst(tags=TAGS + (("owner", "x"),)), TAGS) is None


def test_no_required_tags_means_every_running_redis_qualifies():
    assert skip_reason(inst(tags=()), ()) is None


def test_missing_tag_is_named():
    assert skip_reason(inst(tags=(("archive-logs", "true"),)), TAGS) == "missing tag team"


def test_tag_with_another_value_is_named():
    assert skip_reason(inst(tags=(("archive-logs", "false"), ("team", "dba"))), TAGS) == \
        "tag archive-logs has another value"


def test_tag_value_comparison_is_exact():
    assert skip_reason(inst(tags=(("archive-logs", "True"), ("team", "dba"))), TAGS) is not None


@pytest.mark.parametrize("engine", ["Memcached", "memcache", ""])
def test_other_engines_are_not_redis(engine):
    reason = skip_reason(inst(engine=engine), TAGS)
    assert reason is not None and reason.endswith("is not Redis")
    assert (engine or "?") in reason


def test_engine_name_is_case_insensitive():
    assert skip_reason(inst(engine="redis"), TAGS) is None
    assert skip_reason(inst(engine="REDIS"), TAGS) is None


@pytest.mark.parametrize("version", ["3.0", "2.8", "3.0.7", "0.9", "", "unknown"])
def test_redis_before_4_0_has_no_run_logs(version):
    reason = skip_reason(inst(version=version), TAGS)
    assert reason is not None
    assert "4.0 or later needed" in reason
    assert (version or "?") in reason


@pytest.mark.parametrize("version", ["4.0", "5.0", "6.0", "6.2.7", "7.0", "10.0", "4.0.14"])
def test_redis_4_0_and_later_qualifies(version):
    assert skip_reason(inst(version=version), TAGS) is None


def test_redis_version_without_minor_number_4_qualifies():
    assert skip_reason(inst(version="4"), TAGS) is None


@pytest.mark.parametrize("status", ["CREATING", "FROZEN", "ERROR", "RESTARTING", "EXTENDING", "running", ""])
def test_instance_not_running_is_skipped_with_its_status(status):
    reason = skip_reason(inst(status=status), TAGS)
    assert reason == f"status {status or '?'}, not RUNNING"


def test_tags_are_checked_before_engine_and_version():
    assert skip_reason(inst(engine="Memcached", version="1.5", tags=()), TAGS) == "missing tag archive-logs"


def test_parse_version_reads_up_to_three_numbers():
    assert parse_version("6.2.7.1") == (6, 2, 7)
    assert parse_version("Redis 5.0") == (5, 0)
    assert parse_version("") is None
    assert parse_version(None) is None
    assert MIN_VERSION == (4, 0)


def test_qualify_splits_matched_and_skipped_with_reasons_keeping_order():
    instances = [
        inst("a"),
        inst("b", version="3.0"),
        inst("c", tags=()),
        inst("d", status="FROZEN"),
        inst("e", engine="Memcached"),
        inst("f", version="6.0"),
    ]
    matched, skipped = qualify(instances, TAGS)
    assert [i.instance_id for i in matched] == ["a", "f"]
    assert [s.instance_id for s in skipped] == ["b", "c", "d", "e"]
    assert all(isinstance(s, Skipped) for s in skipped)
    assert skipped[0] == Skipped("b", "name-b", "Redis 3.0 has no run logs (4.0 or later needed)")
    assert skipped[1].reason == "missing tag archive-logs"
    assert skipped[2].reason == "status FROZEN, not RUNNING"
    assert skipped[3].reason == "engine Memcached is not Redis"


def test_qualify_accepts_tags_as_a_one_shot_iterator():
    matched, skipped = qualify([inst("a"), inst("b")], iter(TAGS))
    assert [i.instance_id for i in matched] == ["a", "b"]
    assert skipped == []


def test_qualify_of_nothing_is_nothing():
    assert qualify([], TAGS) == ([], [])


REPLICAS = [
    Replica("r1", "192.168.0.1", "master", "group-0"),
    Replica("r2", "192.168.0.2", "slave", "group-0"),
    Replica("r3", "192.168.0.3", "master", "group-1"),
    Replica("r4", "192.168.0.4", "slave", "group-1"),
]


def test_all_replicas_are_collected_by_default():
    assert replicas_to_collect(REPLICAS, "all") == REPLICAS


def test_master_option_keeps_only_masters_in_order():
    assert [r.replication_id for r in replicas_to_collect(REPLICAS, "master")] == ["r1", "r3"]


def test_replicas_from_a_generator_are_all_kept():
    assert replicas_to_collect(iter(REPLICAS), "all") == REPLICAS


def test_no_masters_means_nothing_to_collect_with_master_option():
    assert replicas_to_collect([r for r in REPLICAS if r.role == "slave"], "master") == []
