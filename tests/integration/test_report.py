"""The HTML report on pipeline-produced data: the collector's copy in the archive bucket (written only when
something changed), `cli report` and `cli report-link`, and the page in a real browser (headless Chromium from
Debian's `chromium` package): the expected cells in the rendered DOM, no script error, a screenshot."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from shared.report import report_key
from tests.integration.test_cli import cli
from tests.integration.test_collector import TAGS

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = "redis-run-logs/"
SLOW = {"API_MAX_RETRIES": "0", "COLLECT_POLL_SECONDS": "0.1"}
# headless, and nothing reached beyond the page: every host name resolves to nothing, so a resource the page
# would fetch from the network shows up as a failed load in the console
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND")


def a_week_with_a_refused_node(cloud):
    """A master/standby pair whose standby refuses every collection (its days stay missing), a single node, and
    a Redis 3.0 instance the collector skips; collected, archived and swept as the timers would."""
    emu = cloud.emulator
    ha = emu.add_instance(name="session-store", tags=TAGS, cache_mode="ha", replicas=2)
    single = emu.add_instance(name="orders-cache", tags=TAGS, cache_mode="single")
    legacy = emu.add_instance(name="legacy", tags=TAGS, engine_version="3.0")
    refused = ha.nodes[1]
    emu.faults.add("CreateRedislog", "error500", replication_id=refused.replication_id)
    first = cloud.run_collector(**SLOW)
    for d in cloud.trigger(**SLOW).drain():
        assert d.ok, d.traceback
    return ha, single, legacy, refused, first


def chromium() -> str:
    """Debian's chromium: installed here when missing (as .ci/run does), else the test is skipped, never in CI."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            if subprocess.run(command, env=env, capture_output=True, timeout=900).returncode != 0:
                break
        found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("headless Chromium is not installed and could not be (needs root and apt-get: "
                    "`apt-get install -y chromium`)")
    return found


def run_chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


class Cells(HTMLParser):
    """The calendar cells of a rendered page: {(instance, node, day): (state, badge text)}, and the skipped rows."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], list[str]] = {}
        self.skipped: list[str] = []
        self.instance = self.node = ""
        self.cell: list[str] | None = None
        self.in_badge = self.in_skipped = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table" and "data-instance" in a:
            self.instance = a["data-instance"]
        elif tag == "tr" and "data-node" in a:
            self.node = a["data-node"]
        elif tag == "tr" and "skipped" in (a.get("class") or ""):
            self.in_skipped = True
            self.skipped.append("")
        elif tag == "td" and "data-state" in a:
            self.cell = [a["data-state"], ""]
            self.cells[(self.instance, self.node, a["data-day"])] = self.cell
        elif tag == "span" and self.cell is not None and "bd" in (a.get("class") or "").split():
            self.in_badge = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None
        elif tag == "span":
            self.in_badge = False
        elif tag == "tr":
            self.in_skipped = False

    def handle_data(self, data: str) -> None:
        if self.in_badge and self.cell is not None:
            self.cell[1] += data
        if self.in_skipped:
            self.skipped[-1] += data


def test_the_collector_writes_the_report_to_the_bucket_only_when_something_changed_and_report_link_opens_it(cloud):
    _, _, _, _, first = a_week_with_a_refused_node(cloud)
    assert first["report_written"] is True, "none yet: the first run writes it"
    key = report_key(ARCHIVE)
    swept = cloud.run_collector(action="sweep", **SLOW)
    assert swept["manifests_written"] == [], "the refused node's days are not settled"
    assert swept["report_written"] is True, "the ledgers changed since the report was written"
    assert cloud.run_collector(action="sweep", **SLOW)["report_written"] is False, "nothing changed: not rewritten"
    logged = [line for line in cloud.log_lines() if '"event":"report_written"' in line]
    assert len(logged) == 2 and key in logged[-1]

    stored = cloud.obs.get_bytes(cloud.archive_bucket, key)
    assert stored.startswith(b"<!DOCTYPE html>") and b"session-store" in stored
    assert (cloud.obs.head(cloud.archive_bucket, key) or {})["content-type"].startswith("text/html")

    link = cli(cloud, "report-link", "--expires", "600")
    assert link.returncode == 0, link.stderr
    url = link.stdout.strip()
    assert url.startswith(cloud.seaweed.endpoint) and "Signature" in url
    fetched = requests.get(url, timeout=30)
    assert fetched.status_code == 200 and fetched.content == stored
    assert fetched.headers["Content-Type"].startswith("text/html")

    # a collect run leaves the page to the sweep (the jobs it enqueues are still being archived), unless it wrote
    # manifests: here the next day's run writes the one of the day the refused node's oldest day left DCS's window
    cloud.emulator.clock.advance(days=1)
    collected = cloud.run_collector(**SLOW)
    assert collected["manifests_written"] and collected["report_written"] is True, collected
    for d in cloud.trigger(**SLOW).drain():
        assert d.ok, d.traceback
    again = cloud.run_collector(**SLOW)  # the ledgers changed since: a sweep would redraw the page now
    assert again["jobs_enqueued"] == 1 and again["manifests_written"] == [] and again["report_written"] is False
    before = cloud.obs.get_bytes(cloud.archive_bucket, key)
    for d in cloud.trigger(**SLOW).drain():
        assert d.ok, d.traceback
    assert cloud.run_collector(action="sweep", **SLOW)["report_written"] is True, "the ledgers changed"
    assert cloud.obs.get_bytes(cloud.archive_bucket, key) != before


def test_report_link_says_when_there_is_no_report_yet(cloud):
    done = cli(cloud, "report-link")
    assert done.returncode == 1 and "no report at" in done.stderr


def test_report_takes_relative_days_writes_to_stdout_and_refuses_a_range_past_yesterday(cloud):
    done = cli(cloud, "report", "--out", "-", "--since", "-3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!DOCTYPE html>") and "(3 days)" in done.stdout
    assert "None known" in done.stdout, "no manifest and no collector run yet"
    late = cli(cloud, "report", "--out", "-", "--since", "today")
    assert late.returncode == 2 and "is after its last" in late.stderr
    bad = cli(cloud, "report", "--out", "-", "--since", "2026-13-01")
    assert bad.returncode == 2 and "not a day" in bad.stderr


def test_the_report_renders_in_chromium_with_the_expected_cells_no_script_error_and_a_screenshot(cloud, tmp_path):
    browser = chromium()
    ha, single, legacy, refused, _ = a_week_with_a_refused_node(cloud)
    days = cloud.final_days(ha.instance_id)[-7:]
    page = tmp_path / "report.html"
    done = cli(cloud, "report", "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert "2 instance(s), 21 node-days (14 archived, 0 no-log, 0 failed, 7 missing)" in done.stderr

    dom = run_chromium(browser, tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Failed to load" in line], console
    assert 'data-ready="21"' in dom.stdout, "the page's script ran to its end and saw every cell"

    parsed = Cells()
    parsed.feed(dom.stdout)
    master = next(n for n in ha.nodes if n.replication_ip != refused.replication_ip)
    for day in days:
        assert parsed.cells[("session-store", refused.replication_ip, day)][0] == "missing"
        assert parsed.cells[("session-store", master.replication_ip, day)][0] == "archived"
        assert parsed.cells[("orders-cache", single.nodes[0].replication_ip, day)][0] == "archived"
    assert len(parsed.cells) == 21
    badges = [badge for _, badge in parsed.cells.values() if badge]
    assert badges and all(b == "99+" or int(b) > 0 for b in badges), "the generated logs hold notable events"
    assert any("legacy" in row and "Redis 3.0" in row for row in parsed.skipped)

    shot = ROOT / "build" / "test-report.png"
    shot.parent.mkdir(exist_ok=True)
    taken = run_chromium(browser, tmp_path, "--window-size=1280,1000", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "a screenshot with something on it"


def runs(python: str) -> bool:
    """The interpreter starts with an empty environment (a pyenv shim does not)."""
    try:
        return subprocess.run([python, "-c", "pass"], env={}, capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


@pytest.mark.slow
def test_the_collector_package_renders_the_report_in_a_clean_interpreter(tmp_path):
    """The function renders the page: Jinja2, MarkupSafe and the template are in its package and work there, on
    CPython 3.10 (the runtime's) when this machine has it, with nothing but the package on sys.path."""
    built = subprocess.run([sys.executable, str(ROOT / "tools" / "package.py"), "--out", str(tmp_path / "out"),
                            "--cache-dir", str(ROOT / "build" / "pip-cache"), "--functions", "collector"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    code = tmp_path / "code"
    with zipfile.ZipFile(tmp_path / "out" / "collector.zip") as archive:
        archive.extractall(code)
    python = next((c for c in [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10"))),
                               shutil.which("python3.10")] if c and runs(c)), sys.executable)
    check = ("import sys; sys.path.insert(0, sys.argv[1])\n"
             "from shared.ledger import Ledger, NodeRecord\n"
             "from shared.report import build, render\n"
             "ledger = Ledger('i-1', 'orders-cache')\n"
             "ledger.nodes = {'10.0.0.1': NodeRecord('10.0.0.1', expected_from='2026-11-01', days={'2026-11-01': "
             "{'state': 'archived', 'bytes_in': 10, 'digest': {'day': '2026-11-01', 'events': {'restart': 1}}}})}\n"
             "html = render(build([ledger], ['2026-11-01', '2026-11-02'], today='2026-11-03', generated_at='x'))\n"
             "import jinja2, markupsafe\n"
             "assert jinja2.__file__.startswith(sys.argv[1]) and markupsafe.__file__.startswith(sys.argv[1])\n"
             "print(len(html), 'data-state=\"archived\"' in html, 'data-state=\"missing\"' in html)\n")
    done = subprocess.run([python, "-I", "-S", "-c", check, str(code)], cwd=code, capture_output=True, text=True,
                          timeout=120, env={})
    assert done.returncode == 0, done.stdout + done.stderr
    size, archived, missing = done.stdout.split()
    assert int(size) > 10_000 and archived == missing == "True"
