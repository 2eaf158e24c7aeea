"""Command line, for trials, backfills and hosts without FunctionGraph (`python -m shared.cli --help`).

    run            the collector, then the archiver over the queue's pending jobs, in this process
    setup-buckets  create the archive and queue buckets if missing, with lifecycle rules (idempotent)
    status         the node-day ledger as a table (exit 1 when a node-day is missing or failed)

Configuration and credentials come from the same environment variables as the functions. Summaries go to
stdout as JSON; progress goes to stderr, as short lines on a terminal and JSON lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional, Sequence

from shared.buckets import Retention, SetupError, setup_buckets
from shared.config import ConfigError, load_config
from shared.events import CollectorRequest, ObjectRef
from shared.ledger import FAILED, MISSING, LedgerStore, status_table, window
from shared.logs import JsonLogger
from shared.obs import Obs, ObsError
from shared.obs import build_client as build_obs_client
from shared.runtime import credentials_from
from shared.selection import log_day
from shared.wiring import build_archiver, build_collector

_SHOWN = ("instance_id", "file", "key", "reason", "error", "outcome", "archived", "matched", "jobs_enqueued")


class TerminalSink:
    """Renders JSON log lines as short human lines for a terminal."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream

    def _show(self, level: str, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            print(line, file=self.stream)
            return
        if record.get("event", "").endswith("_summary"):
            return  # summaries are printed whole on stdout
        extras = " ".join(f"{k}={_short(record[k])}" for k in _SHOWN if k in record)
        mark = {"error": "!", "warning": "~"}.get(level, " ")
        print(f"{record.get('time', '')[11:19]} {mark} {record.get('event')} {extras}", file=self.stream,
              flush=True)

    def info(self, line: str) -> None:
        self._show("info", line)

    def warn(self, line: str) -> None:
        self._show("warning", line)

    def error(self, line: str) -> None:
        self._show("error", line)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _logger() -> JsonLogger:
    return JsonLogger(TerminalSink() if sys.stderr.isatty() else None, tool="cli")


def cmd_run(args: argparse.Namespace) -> int:
    log = _logger()
    config = load_config()
    summaries: dict = {}
    if not args.skip_collect:
        collector = build_collector(config, None, log)
        ids = tuple(args.instance_id) if args.instance_id else None
        summaries["collector"] = collector.run(CollectorRequest("collect", ids, "cli"))
    archiver = build_archiver(config, None, log)
    queue = archiver.queue
    keys = sorted(o.key for o in queue.obs.list(queue.bucket, f"{queue.prefix}pending/"))
    if args.instance_id:
        wanted = {f"{queue.prefix}pending/{i}.json" for i in args.instance_id}
        keys = [k for k in keys if k in wanted]
    started, results = time.monotonic(), []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(archiver.process_object, ObjectRef(queue.bucket, k, "cli")): k for k in keys}
        for n, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results.append(result)
            log.info("job_progress", done=n, total=len(keys), instance_id=result.get("instance_id"),
                     outcome=result.get("outcome"), archived=result.get("archived", 0))
    summaries["archiver"] = {"jobs": results, "duration_s": round(time.monotonic() - started, 3),
                             "outcomes": {o: sum(1 for r in results if r.get("outcome") == o)
                                          for o in sorted({str(r.get("outcome")) for r in results})}}
    print(json.dumps(summaries, indent=1, default=str))
    return 0 if all(r.get("outcome") in ("done", "already done") for r in results) else 1


def cmd_setup_buckets(args: argparse.Namespace) -> int:
    log = _logger()
    config = load_config(needs_tags=False)
    creds = credentials_from(None)
    obs = Obs(build_obs_client(config.obs_endpoint, creds, path_style=config.obs_path_style))
    retention = Retention(warm_after_days=args.warm_after_days or None,
                          cold_after_days=args.cold_after_days or None,
                          expire_after_days=args.expire_after_days or None, versioning=args.versioning,
                          done_expire_days=args.done_expire_days or None)
    print(json.dumps(setup_buckets(obs, config, retention, log), indent=1))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The node-day ledgers as a table; exit 1 when a node-day in the range is missing or failed."""
    config = load_config(needs_tags=False)
    obs = Obs(build_obs_client(config.obs_endpoint, credentials_from(None), path_style=config.obs_path_style))
    store = LedgerStore(obs, config.queue_bucket, config.queue_prefix)
    today = date.fromisoformat(log_day(datetime.now(timezone.utc), config.log_timezone))
    until = date.fromisoformat(args.until) if args.until else today - timedelta(days=1)
    since = date.fromisoformat(args.since) if args.since else date.fromisoformat(window(today)[0])
    days = [(since + timedelta(days=n)).isoformat() for n in range((until - since).days + 1)]
    ledgers, unreadable = [], []
    for instance_id, ledger, error in store.read_all():
        if ledger is None:
            unreadable.append(f"{instance_id}: {error}")
        elif not args.instance or args.instance in (ledger.instance_id, ledger.instance_name):
            ledgers.append(ledger)
    if args.json:
        print(json.dumps([ledger.to_dict() for ledger in ledgers], indent=1))
    else:
        print(status_table(ledgers, days, long=args.long))
        for line in unreadable:
            print(f"unreadable ledger {line}", file=sys.stderr)
    states = [s for ledger in ledgers for _, _, s in ledger.node_days(days)]
    print(f"{len(ledgers)} instance(s), {len(states)} node-days: "
          + ", ".join(f"{states.count(s)} {s}" for s in ("archived", "no-log", FAILED, MISSING)), file=sys.stderr)
    return 1 if unreadable or FAILED in states or MISSING in states else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="collect, then archive every pending job, in this process")
    run.add_argument("--instance-id", action="append", help="limit to this instance (repeatable); it must "
                                                            "still carry INSTANCE_TAGS")
    run.add_argument("--skip-collect", action="store_true", help="only archive the jobs already pending")
    run.add_argument("--jobs", type=int, default=4, help="jobs archived at once (default 4)")
    run.set_defaults(func=cmd_run)
    setup = sub.add_parser("setup-buckets", help="create the buckets if missing and apply lifecycle rules")
    setup.add_argument("--warm-after-days", type=int, default=30, help="archive objects to WARM after N days "
                                                                      "(0: never; default 30)")
    setup.add_argument("--cold-after-days", type=int, default=90, help="to COLD after N days (0: never; 90)")
    setup.add_argument("--expire-after-days", type=int, default=0, help="delete archived logs after N days "
                                                                        "(0: keep; default)")
    setup.add_argument("--versioning", action="store_true", help="enable versioning on the archive bucket")
    setup.add_argument("--done-expire-days", type=int, default=30, help="delete finished job records after "
                                                                        "N days (0: keep; default 30)")
    setup.set_defaults(func=cmd_setup_buckets)
    status = sub.add_parser("status", help="the node-day ledger: every node's every day and its state")
    status.add_argument("--instance", help="one instance, by id or name")
    status.add_argument("--since", help="first day (yyyy-mm-dd; default: the oldest day DCS still holds)")
    status.add_argument("--until", help="last day (yyyy-mm-dd; default: yesterday)")
    status.add_argument("--long", action="store_true", help="one line per node-day, with key, size or reason")
    status.add_argument("--json", action="store_true", help="the ledgers as JSON")
    status.set_defaults(func=cmd_status)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, SetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ObsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
