"""The report's model and page (shared/report.py) on ledgers and manifests built here: no server."""

from __future__ import annotations

import re
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.ledger import Ledger, NodeRecord
from shared.report import NONE, build, days_between, default_range, due, render, report_key

ROOT = Path(__file__).resolve().parents[2]
DAYS = days_between("2026-11-01", "2026-11-07")
TODAY = "2026-11-08"


def digest(day: str, **events: int) -> dict:
    return {"v": 1, "day": day, "lines": 400, "levels": {"debug": 0, "verbose": 10, "notice": 380, "warning": 10},
            "events": events, "first": f"{day}T00:00:01.000", "last": f"{day}T23:59:58.120"}


def a_ledger() -> Ledger:
    """A master archived all week (with events), a replica added mid-week with a no-log, a failed and missing days."""
    master = NodeRecord("10.0.0.1", group="group-0", role="master", expected_from=DAYS[0])
    for day in DAYS:
        master.days[day] = {"state": "archived", "key": f"p/i-1/{day}/group-0/redis_10.0.0.1_{day}.log.gz",
                            "bytes_in": 48_000, "bytes_out": 6_000, "sha256": "ab" * 32,
                            "digest": digest(day, master_lost=1, restart=1, replica_lost=2)}
    master.days[DAYS[2]]["digest"] = digest(DAYS[2], oom=1, crash=1, master_lost=2)
    replica = NodeRecord("10.0.0.2", group="group-0", role="slave", expected_from=DAYS[2],
                         last_error="DCS.4017: another collection of the instance is running")
    replica.days[DAYS[2]] = {"state": "no-log", "job_id": "j1", "collected_at": "2026-11-04T01:00:00Z"}
    replica.days[DAYS[3]] = {"state": "failed", "reason": "left DCS's 7-day window: refused"}
    replica.days[DAYS[4]] = {"state": "missing", "reason": "copy failed: timeout", "attempts": 2}
    ledger = Ledger("i-1", "orders-cache", cache_mode="ha")
    ledger.nodes = {"10.0.0.1": master, "10.0.0.2": replica}
    return ledger


def states(row) -> list[str]:
    return [c.state for c in row.cells]


def test_cells_take_the_ledger_state_and_stay_blank_where_a_node_is_not_expected():
    report = build([a_ledger()], DAYS, today=TODAY, generated_at="now")
    (inst,) = report.instances
    master, replica = inst.rows
    assert states(master) == ["archived"] * 7
    assert states(replica) == [NONE, NONE, "no-log", "failed", "missing", "missing", "missing"]
    assert [c.mark for c in replica.cells] == ["", "", "\u2013", "\u2715", "?", "?", "?"]
    assert inst.totals.counts == {"archived": 7, "no-log": 1, "failed": 1, "missing": 3}
    assert inst.totals.bytes_in == 7 * 48_000 and inst.totals.lines == 7 * 400


def test_a_cells_badge_counts_its_notable_events_and_its_title_lists_every_count():
    report = build([a_ledger()], DAYS, today=TODAY, generated_at="now")
    master = report.instances[0].rows[0]
    plain, eventful = master.cells[0], master.cells[2]
    assert plain.badge == 2 and plain.notable == {"master_lost": 1, "restart": 1} and not plain.critical
    assert "replica lost 2" in plain.title, "notice-level events are listed in the title, not counted in the badge"
    assert eventful.badge == 4 and eventful.critical
    assert "46.9 KiB of log, 5.9 KiB stored" in eventful.title and "400 lines, 10 at warning level" in eventful.title
    assert report.eventful[0][2] is eventful, "the critical day leads the eventful list"


def test_missing_and_failed_node_days_are_named_with_their_reasons_in_runs_of_days():
    report = build([a_ledger()], DAYS, today=TODAY, generated_at="now")
    named = [(p.state, p.first, p.last, p.days, p.node, p.reason) for p in report.problems]
    assert named[0] == ("missing", DAYS[4], DAYS[4], 1, "10.0.0.2", "copy failed: timeout")
    assert named[1][:5] == ("missing", DAYS[5], DAYS[6], 2, "10.0.0.2")
    assert named[1][5].startswith("last refusal: DCS.4017"), "no reason of its own: the node's last refusal"
    assert named[-1] == ("failed", DAYS[3], DAYS[3], 1, "10.0.0.2", "left DCS's 7-day window: refused")
    assert report.problems_total == 4, "node-days, not runs"


def test_days_beyond_the_ledgers_come_from_the_manifests_with_their_amendments():
    old = ["2026-09-01", "2026-09-02"]
    manifests = {
        old[0]: {"day": old[0], "instances": [
            {"instance_id": "i-1", "instance_name": "orders-cache", "nodes": [
                {"node": "10.0.0.1", "group": "group-0", "role": "master", "state": "archived", "key": "k",
                 "original_size": 1000, "stored_size": 100, "digest": digest(old[0], failover=3)},
                {"node": "10.0.0.2", "group": "group-0", "role": "slave", "state": "missing"}]},
            {"instance_id": "gone-1", "instance_name": "retired", "nodes": [
                {"node": "(single node)", "state": "no-log"}]}],
            "skipped": [], "amendments": []},
        old[1]: {"day": old[1], "instances": [], "skipped": [], "amendments": [
            {"day": old[0], "instance_id": "i-1", "node": "10.0.0.2", "was": "missing", "state": "failed",
             "reason": "left DCS's 7-day window"}]},
    }
    report = build([a_ledger()], old, today=TODAY, generated_at="now", manifests=manifests)
    by_id = {i.instance_id: i for i in report.instances}
    master, replica = by_id["i-1"].rows
    assert states(master) == ["archived", NONE] and master.cells[0].source == "manifest"
    assert master.cells[0].badge == 3 and master.cells[0].record["bytes_in"] == 1000
    assert states(replica)[0] == "failed", "the amendment in the next manifest wins"
    assert by_id["gone-1"].note and states(by_id["gone-1"].rows[0]) == ["no-log", NONE]
    assert by_id["gone-1"].rows[0].label == "(single node)"
    assert report.manifest_days == 2


def test_the_default_range_starts_at_the_first_day_known_and_never_passes_yesterday():
    today = date(2026, 11, 8)
    ledger = a_ledger()
    assert default_range([ledger], [], today) == ("2026-11-01", "2026-11-07")
    assert default_range([ledger], ["2026-06-01"], today) == ("2026-10-09", "2026-11-07"), "30 days at most"
    assert default_range([], [], today) == ("2026-11-01", "2026-11-07"), "no history: DCS's window"
    assert default_range([ledger], [], today, until="2026-12-31") == ("2026-11-01", "2026-11-07")
    assert default_range([ledger], [], today, since="2026-10-01", until="2026-10-03") == ("2026-10-01", "2026-10-03")
    with pytest.raises(ValueError, match="after its last"):
        default_range([ledger], [], today, since="2026-11-08")


def test_the_page_is_self_contained_escaped_and_marks_every_state_with_a_symbol():
    ledger = a_ledger()
    ledger.instance_name = "<b>orders</b>"
    ledger.nodes["10.0.0.2"].days[DAYS[3]]["reason"] = "<script>alert(1)</script>"
    skipped = [{"instance_id": "x-1", "name": "legacy & old", "reason": "Redis 3.0 has no run logs"}]
    html = render(build([ledger], DAYS, today=TODAY, generated_at="now", skipped=skipped,
                        skipped_source="the manifest of 2026-11-07", location="obs://bucket/redis-run-logs/"))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<b>orders</b>" not in html and "&lt;b&gt;orders&lt;/b&gt;" in html
    assert "legacy &amp; old" in html and "Redis 3.0 has no run logs" in html
    # nothing to fetch: no external stylesheet, script, font, image or link off the page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert len(re.findall(r"<script\b", html)) == 1
    cells = re.findall(r'<td class="[^"]*" data-day="([\d-]+)" data-state="([a-z-]+)"[^>]*>([^<]*)', html)
    assert len(cells) == 14
    marks = {state: mark for _, state, mark in cells}
    assert marks == {"archived": "\u2713", "no-log": "\u2013", "failed": "\u2715", "missing": "?", "none": ""}


def test_an_empty_archive_renders_a_page_that_says_so():
    html = render(build([], DAYS, today=TODAY, generated_at="now"))
    assert "No instance has a ledger or a manifest in this range yet" in html
    assert "None known" in html


def test_the_report_is_rewritten_on_manifests_a_new_day_or_a_changed_ledger_only():
    tz = timezone(timedelta(hours=8))
    written = datetime(2026, 11, 8, 2, 0, tzinfo=timezone.utc)  # 10:00 on the 8th at +08:00
    built_from = written - timedelta(minutes=1)  # the newest ledger when it was built
    assert due(None, None, None, False, "2026-11-08", tz), "none yet"
    assert due(written, built_from, built_from, True, "2026-11-08", tz), "manifests written"
    assert due(written, built_from, built_from, False, "2026-11-09", tz), "written on an earlier day"
    assert due(written, built_from, built_from + timedelta(seconds=1), False, "2026-11-08", tz), "a ledger changed"
    assert due(written, None, built_from, False, "2026-11-08", tz), "built before any ledger existed"
    assert not due(written, built_from, built_from, False, "2026-11-08", tz), "same second, same ledgers"
    assert not due(written, None, None, False, "2026-11-08", tz)
    # a collect run (its jobs still being archived): only a first report, or one for new manifests
    assert due(None, None, None, False, "2026-11-08", tz, jobs_in_flight=True), "none yet"
    assert due(written, built_from, built_from, True, "2026-11-09", tz, jobs_in_flight=True), "manifests written"
    assert not due(written, built_from, built_from, False, "2026-11-09", tz, jobs_in_flight=True), "earlier day"
    assert not due(written, built_from, built_from + timedelta(seconds=1), False, "2026-11-08", tz,
                   jobs_in_flight=True), "a ledger changed: the sweep draws it once the archivers are done"
    assert report_key("redis-run-logs/") == "redis-run-logs/_report/index.html"


def test_the_template_and_jinja2s_tests_module_go_into_the_function_packages(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import package
    finally:
        sys.path.remove(str(ROOT / "tools"))
    for name in ("jinja2/tests.py", "jinja2/defaults.py", "crcmod/test.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("# a module\n")
    files = package.collect_files("collector", tmp_path)
    assert files["shared/templates/report.html.j2"] == ROOT / "shared" / "templates" / "report.html.j2"
    assert "jinja2/tests.py" in files, "Jinja2 imports its tests module: the report would not render without it"
    assert "crcmod/test.py" not in files, "a real test module is still left out"
