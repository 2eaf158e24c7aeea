"""`make demo`: the whole flow on the local cloud, with the functions' real handlers.

Starts SeaweedFS and the DCS emulator, creates a scenario (single-node, master/standby and cluster instances,
a few untagged, eight days of logs), invokes the collector as its timer would, lets the local OBS trigger fire
the archiver for every pending job, runs the collector's sweep timer (which writes the daily manifests and the
HTML report), prints what was archived and the summaries, where the report is and a `grep` over the archive, and
stops what it started.

    python tools/demo.py [--screenshot PNG]     (--screenshot: the report in headless Chromium, if installed)
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.localcloud.dcs import DcsEmulator  # noqa: E402
from tests.localcloud.functiongraph import Context, timer_event  # noqa: E402
from tests.localcloud.pipeline import LocalCloud  # noqa: E402
from tests.localcloud.seaweed import SeaweedFS  # noqa: E402

REPORT_COPY = ROOT / "build" / "demo-report.html"
GREP_PATTERN = "Connection with master lost"  # every replica's generated log has it (redislog_text.py)
GREP_INSTANCE = "session-store"


def load_handler(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_index", ROOT / "functions" / name / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def scenario(emu: DcsEmulator) -> dict[str, str]:
    """Instance id -> name of the demo's instances; one cluster node set has a day without logs."""
    tags = {"archive-logs": "yes", "env": "prod"}
    made = [
        emu.add_instance(name="orders-cache", tags=tags, cache_mode="single", log_size=48_000),
        emu.add_instance(name="session-store", tags=tags, cache_mode="ha", replicas=2, log_size=64_000),
        emu.add_instance(name="catalog-cluster", tags=tags, cache_mode="cluster", shards=3, replicas=2,
                         log_size=32_000, missing_days=[emu.today() - timedelta(days=3)]),
        emu.add_instance(name="scratch", tags={"env": "dev"}, cache_mode="single"),
        emu.add_instance(name="staging-cache", tags={"archive-logs": "no", "env": "prod"}, cache_mode="ha"),
        emu.add_instance(name="legacy-cache", tags=tags, cache_mode="single", engine_version="3.0"),
    ]
    return {i.instance_id: i.name for i in made}


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m shared.cli ...` as a user runs it, with the demo's environment."""
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def screenshot(page: Path, png: Path) -> bool:
    """The page as headless Chromium (Debian's `chromium`) shows it on a laptop-sized window."""
    browser = shutil.which("chromium")
    if browser is None:
        print("no chromium here: no screenshot (apt-get install -y chromium)", file=sys.stderr)
        return False
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-chromium-") as profile:
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                               "--window-size=1280,1060", f"--screenshot={png}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        print(f"chromium failed: {done.stderr[-1000:]}", file=sys.stderr)
    return done.returncode == 0


def show_report(cloud: LocalCloud) -> None:
    """Where the report is: the collector's daily copy in the bucket, a local copy, and the commands."""
    from shared.report import report_key

    key = report_key("redis-run-logs/")
    html = cloud.obs.get_bytes(cloud.archive_bucket, key)
    print("\n== the report")
    if html is None:
        print(f"no report in s3://{cloud.archive_bucket}/{key}: see the collector's report_write_failed line")
        return
    REPORT_COPY.parent.mkdir(parents=True, exist_ok=True)
    REPORT_COPY.write_bytes(html)
    print(f"daily copy (written by the collector): s3://{cloud.archive_bucket}/{key}")
    print(f"local copy: {REPORT_COPY.relative_to(ROOT)}  (open it in a browser; it needs no network)")
    link = cli("report-link", "--expires", "3600")
    print("a presigned link to the daily copy: python -m shared.cli report-link")
    print(f"  -> {link.stdout.strip() or link.stderr.strip()}  (this one ends with the demo's local cloud)")
    print("a report of any range: python -m shared.cli report --out report.html [--since D] [--until D]")


def show_grep() -> None:
    """A search of the demo's archive, as the README shows it."""
    args = ["grep", GREP_PATTERN, "--instance", GREP_INSTANCE, "--since", "-7"]
    done = cli(*args)
    print(f"\n== grep: python -m shared.cli {shlex.join(args)}")
    hits = done.stdout.splitlines()
    for line in hits[:5]:
        print(f"  {line}")
    if len(hits) > 5:
        print(f"  ... {len(hits) - 5} more")
    print(f"  {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f'exit {done.returncode}'}")


def show_proof() -> None:
    """The node-day ledger and the check of the manifests' chain, as an auditor runs them."""
    status = cli("status")
    print("\n== every node, every day: python -m shared.cli status")
    print(status.stdout.rstrip())
    print(f"  {status.stderr.strip().splitlines()[-1] if status.stderr.strip() else ''} (exit {status.returncode})")
    verify = cli("verify", "--deep")
    print("\n== the manifests' hash chain and every object, re-hashed: python -m shared.cli verify --deep")
    lines = verify.stdout.strip().splitlines()
    print(f"  {lines[-1] if lines else verify.stderr.strip()} (exit {verify.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, help="also save the report as headless Chromium shows it (PNG)")
    options = parser.parse_args(argv)
    started = time.monotonic()
    with SeaweedFS() as store:
        emu = DcsEmulator(store, ak=store.access_key, sk=store.secret_key, collection_delay=1.0).start()
        cloud = LocalCloud(store, emu, archive_bucket="demo-redis-log-archive", queue_bucket="demo-redis-log-jobs",
                           tags="archive-logs=yes,env=prod")
        try:
            cloud.create_buckets()
            names = scenario(emu)
            # the functions' environment, as template.yaml sets it; QUERY_TIME=7 takes the whole week on this
            # first run, as a backfill would
            os.environ.update({**cloud.env, "QUERY_TIME": "7", "COLLECT_SETTLE_SECONDS": "2"})

            print("== collector (timer trigger)")
            collector_summary = load_handler("collector")(timer_event({"action": "collect"}),
                                                          Context(function_name="collector", echo_logs=False))
            archiver = load_handler("archiver")
            trigger = cloud.trigger()
            trigger.handler = archiver
            print("== archiver (OBS trigger on the queue's pending/ prefix)")
            deliveries = trigger.drain()
            for d in deliveries:
                if not d.ok:
                    print(f"archiver failed on {d.key}: {d.error}", file=sys.stderr)

            print("== collector (sweep timer): the settled days' manifests, the report")
            sweep_summary = load_handler("collector")(timer_event({"action": "sweep"}, trigger_name="sweep"),
                                                      Context(function_name="collector", echo_logs=False))

            print("\n== archived files")
            print(f"{'instance':<16} {'day':<10} {'group':<8} {'file':<34} {'bytes':>8} {'gz':>7}  sha256")
            total = 0
            for key in cloud.archive_keys():
                raw = cloud.obs.get_bytes(cloud.archive_bucket, key)
                meta = cloud.obs.head(cloud.archive_bucket, key) or {}
                original = gzip.decompress(raw)
                assert len(original) == int(meta["original-size"])
                _, instance_id, day, group, name = key.split("/")
                print(f"{names.get(instance_id, instance_id)[:16]:<16} {day:<10} {group:<8} {name[:34]:<34} "
                      f"{len(original):>8} {len(raw):>7}  {meta['sha256'][:12]}")
                total += 1
            print(f"{total} files in s3://{cloud.archive_bucket}/ ; jobs done: {len(cloud.queue_keys('done'))}, "
                  f"retry: {len(cloud.queue_keys('retry'))}, failed: {len(cloud.queue_keys('failed'))}")

            print("\n== collector summary")
            print(json.dumps(collector_summary, indent=1))
            print("\n== collector summary (sweep)")
            print(json.dumps(sweep_summary, indent=1))
            print("\n== archiver summaries")
            for d in deliveries:
                result = dict(d.result or {})
                print(json.dumps({k: v for k, v in result.items() if k != "jobs"}
                                 | {"jobs": [{k: j.get(k) for k in ("instance_id", "outcome", "files_seen",
                                                                    "archived", "already_archived", "bytes_in",
                                                                    "bytes_out", "skipped")}
                                             for j in result.get("jobs", [])]}, indent=1))
            show_proof()
            show_report(cloud)
            show_grep()
        finally:
            cloud.close()
            emu.stop()
    print(f"\nlocal cloud stopped; demo took {time.monotonic() - started:.1f}s")
    if options.screenshot and REPORT_COPY.exists() and screenshot(REPORT_COPY, options.screenshot):
        print(f"screenshot of the report: {options.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
