"""Command line, for trials, backfills and hosts without FunctionGraph (`python -m shared.cli --help`).

    run            the collector, then the archiver over the queue's pending jobs, in this process
    setup-buckets  create the archive and queue buckets if missing, with lifecycle rules (idempotent); WORM
                   retention and default encryption of the archive bucket
    status         the node-day ledger as a table (exit 1 when a node-day is missing or failed)
    verify         the daily manifests' hash chain and the objects they list (--deep re-hashes the content)
    ls             an instance's archived node-days: state, sizes, digest counts
    get            an instance's archived lines, decompressed (--merge: all nodes in time order)
    grep           search an instance's archived lines, many files in parallel
    report         one self-contained HTML page: every node's every day by state, digest counts, what needs attention
    report-link    a presigned link to the report the collector writes daily into the archive bucket

Configuration and credentials come from the same environment variables as the functions. Summaries go to
stdout as JSON; progress goes to stderr, as short lines on a terminal and JSON lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional, Sequence

from shared.buckets import Retention, SetupError, setup_buckets
from shared.config import Config, ConfigError, load_config
from shared.events import CollectorRequest, ObjectRef
from shared.ledger import FAILED, MISSING, LedgerStore, status_table, window
from shared.logs import JsonLogger
from shared.obs import Encryption, Obs, ObsError
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


def _storage() -> tuple[Config, Obs]:
    """The configuration (no INSTANCE_TAGS needed) and an OBS shell with the environment's credentials: what every
    command that reads or prepares the buckets starts from."""
    config = load_config(needs_tags=False)
    obs = Obs(build_obs_client(config.obs_endpoint, credentials_from(None), path_style=config.obs_path_style))
    return config, obs


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
    config, obs = _storage()
    retention = Retention(warm_after_days=args.warm_after_days or None,
                          cold_after_days=args.cold_after_days or None,
                          expire_after_days=args.expire_after_days or None, versioning=args.versioning,
                          done_expire_days=args.done_expire_days or None, worm_days=args.worm_days or None)
    if args.kms_key_id and args.encryption != "kms":
        raise SetupError("--kms-key-id: only with --encryption kms")
    key_id = args.kms_key_id or (config.archive_kms_key_id if args.encryption == "kms" else None)
    encryption = Encryption(args.encryption, key_id) if args.encryption else None
    print(json.dumps(setup_buckets(obs, config, retention, log, encryption), indent=1))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The node-day ledgers as a table; exit 1 when a node-day in the range is missing or failed."""
    config, obs = _storage()
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


# --- reading the archive back: ls, get, grep (shared/readback.py) -----------------------------------------
def _reader(args: argparse.Namespace, on_bytes: Any = None) -> tuple[Any, str, Optional[str], str]:
    """(ArchiveReader, instance id, instance name, today) for the --instance given (an id or a name)."""
    from shared.readback import ArchiveReader

    config, obs = _storage()
    reader = ArchiveReader(obs, config.archive_bucket, config.archive_prefix, workers=args.workers,
                           on_bytes=on_bytes)
    today = log_day(datetime.now(timezone.utc), config.log_timezone)
    instance_id, name = reader.resolve(args.instance, date.fromisoformat(today))
    return reader, instance_id, name, today


def _ledger_of(obs: Obs, instance_id: str) -> Any:
    """The instance's node-day ledger, or None (none yet, or unreadable: the listing is used alone)."""
    from shared.ledger import MalformedLedger

    config = load_config(needs_tags=False)
    try:
        return LedgerStore(obs, config.queue_bucket, config.queue_prefix).read(instance_id)
    except (MalformedLedger, ObsError):
        return None


def _days(args: argparse.Namespace, today: str) -> tuple[Optional[str], Optional[str]]:
    from shared.readback import resolve_day

    now = date.fromisoformat(today)
    since = resolve_day(args.since, now) if args.since else None
    until = resolve_day(args.until, now) if args.until else None
    if since and until and since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    return since, until


def _progress(total: int, what: str) -> Any:
    """A progress bar on stderr for a long read (tqdm), or None: quiet when stderr is not a terminal, and when
    tqdm is not installed (it is a dev/CLI dependency, never shipped in the functions' packages)."""
    if total <= 0 or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                leave=False, dynamic_ncols=True)


class _Bytes:
    """Counts stored bytes read, from the reader's threads, into a progress bar set once the total is known."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _readback_errors(fn: Any) -> Any:
    """The read-back commands' own errors: a bad argument or unknown instance (2), an unreadable object (3),
    and a reader that closed the pipe (`| head`): output stops quietly."""
    def run(args: argparse.Namespace) -> int:
        from shared.readback import ReadError

        try:
            return fn(args)
        except (LookupError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ReadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 0
    return run


def _size(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@_readback_errors
def cmd_ls(args: argparse.Namespace) -> int:
    """The node-days of one instance: state, sizes and the digest's counts (from the object's metadata)."""
    from shared.digest import notable
    from shared.readback import labels, with_ledger, with_metadata

    reader, instance_id, name, today = _reader(args)
    since, until = _days(args, today)
    ledger = _ledger_of(reader.obs, instance_id)  # the reader's client: one OBS client per command
    rows = reader.node_days(instance_id, since, until, metadata=ledger is None)
    if ledger is not None:  # the ledger gives sizes and digests without a HEAD per object, and the days with none
        first = since or min([r.day for r in rows] + window(date.fromisoformat(today))[:1])
        last = until or (date.fromisoformat(today) - timedelta(days=1)).isoformat()
        span = [(date.fromisoformat(first) + timedelta(days=n)).isoformat()
                for n in range((date.fromisoformat(last) - date.fromisoformat(first)).days + 1)]
        rows = with_ledger(rows, ledger, span)
        bare = [r for r in rows if r.recorded_state is None and r.original_size is None]  # e.g. a partial copy
        if bare:
            heads = {r.key: reader.obs.head(reader.bucket, r.key) or {} for r in bare}
            rows = [with_metadata(r, heads[r.key]) if r.key in heads else r for r in rows]
    name = name or next((r.instance_name for r in rows if r.instance_name), None)
    label = labels(rows)
    if args.json:
        for r in rows:
            print(json.dumps({**r.as_dict(), "label": label[r.key]}, sort_keys=True))
        return 0
    print(f"instance {instance_id}" + (f" ({name})" if name else "") + f": {len(rows)} node-days, "
          f"{len({r.day for r in rows})} days, {_size(sum(r.original_size or 0 for r in rows))} of logs, "
          f"{_size(sum(r.stored_size for r in rows))} stored")
    width = max([len(v) for v in label.values()] + [4])
    print(f"{'day':<10}  {'node':<{width}}  {'state':<8}  {'size':>10}  {'stored':>10}  {'lines':>8}  events")
    for r in rows:
        d = r.digest
        events = " ".join(f"{c}={n}" for c, n in notable(d).items()) if d else (r.reason or "-")
        lines = str(d["lines"]) if d else "-"
        print(f"{r.day:<10}  {label[r.key]:<{width}}  {r.state:<8}  {_size(r.original_size):>10}  "
              f"{_size(r.stored_size):>10}  {lines:>8}  {events or '.'}")
    return 0


@_readback_errors
def cmd_get(args: argparse.Namespace) -> int:
    """The lines of the node-days asked for, on stdout: file after file as archived (byte for byte), or with
    --merge every node of each day interleaved in time order, each line prefixed by its node."""
    from shared.readback import labels, merge, ordered_parallel, select

    counter = _Bytes()
    reader, instance_id, _, today = _reader(args, on_bytes=counter)
    since, until = _days(args, today)
    every = reader.node_days(instance_id, since, until, metadata=False)
    label = labels(every)
    rows = select(every, nodes=args.node or ())
    if not rows:
        print(f"no archived node-day of {instance_id} matches", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    counter.bar = _progress(sum(r.stored_size for r in rows), "get")
    try:
        if args.merge:
            for day in sorted({r.day for r in rows}):
                of_day = [r for r in rows if r.day == day]
                out.writelines(merge([(label[r.key], reader.lines(r)) for r in of_day], day))
        else:
            def produce(row: Any, put: Any) -> None:
                for chunk in reader.chunks(row):
                    put(chunk)

            for _, chunks in ordered_parallel(rows, produce, args.workers, depth=4):
                for chunk in chunks:
                    out.write(chunk)
        out.flush()
    finally:
        counter.close()
    return 0


@_readback_errors
def cmd_grep(args: argparse.Namespace) -> int:
    """Lines matching a regex in many node-days, searched in parallel; each hit printed after its day and node
    (`-c`: the count per node-day). Exit 0 when something matched, 1 when nothing did (as grep)."""
    from shared.readback import compile_pattern, grep_lines, labels, ordered_parallel, select

    pattern = compile_pattern(args.pattern, args.ignore_case)
    counter = _Bytes()
    reader, instance_id, _, today = _reader(args, on_bytes=counter)
    since, until = _days(args, today)
    every = reader.node_days(instance_id, since, until, metadata=False)
    label = labels(every)
    rows = select(every, nodes=args.node or ())
    out = sys.stdout.buffer
    counter.bar = _progress(sum(r.stored_size for r in rows), "grep")
    total = 0

    def produce(row: Any, put: Any) -> None:
        batch, count = [], 0
        for line in grep_lines(reader.chunks(row), pattern):
            count += 1
            if not args.count:
                batch.append(line)
                if len(batch) >= 256:
                    put(batch)
                    batch = []
        put(batch if not args.count else count)

    try:
        for row, results in ordered_parallel(rows, produce, args.workers, depth=8):
            head = f"{row.day} {label[row.key]}".encode()
            for item in results:
                if args.count:
                    total += item
                    out.write(head + f" {item}\n".encode())
                else:
                    total += len(item)
                    out.writelines(head + b" " + line for line in item)
        out.flush()
    finally:
        counter.close()
    print(f"{total} matching line(s) in {len(rows)} node-day(s)", file=sys.stderr)
    return 0 if total else 1


def cmd_verify(args: argparse.Namespace) -> int:
    """The manifests' chain and every object they list; exit 1 on any mismatch."""
    from shared.verify import Verifier, render

    config, obs = _storage()
    verifier = Verifier(obs, config.archive_bucket, config.archive_prefix, obs, config.queue_bucket,
                        config.queue_prefix, workers=args.workers)
    report = verifier.run(since=args.since, until=args.until, instance=args.instance, deep=args.deep)
    print(render(report, show_ok=args.all))
    if report.manifests == 0:
        print("error: no manifest in the range", file=sys.stderr)
        return 1
    return 1 if report.problems else 0


# --- the HTML report (shared/report.py) ---------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    """Write the report to a local file (`--out -`: stdout) from the ledgers and, beyond them, the manifests."""
    from shared.jobs import iso
    from shared.readback import resolve_day
    from shared.report import load

    config, obs = _storage()
    now = datetime.now(timezone.utc)
    today = date.fromisoformat(log_day(now, config.log_timezone))
    try:
        since = resolve_day(args.since, today) if args.since else None
        until = resolve_day(args.until, today) if args.until else None
        loaded = load(obs, config.archive_bucket, config.archive_prefix,
                      LedgerStore(obs, config.queue_bucket, config.queue_prefix), today, iso(now),
                      since=since, until=until)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        sys.stdout.write(loaded.html)
    else:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(loaded.html)
    r = loaded.report
    print(f"report {r.since} .. {r.until}: {len(r.instances)} instance(s), {r.totals.node_days} node-days ("
          + ", ".join(f"{n} {s}" for s, n in r.totals.counts.items()) + f"), {r.totals.notable} notable event(s)"
          + ("" if args.out == "-" else f" -> {args.out}"), file=sys.stderr)
    return 0


def cmd_report_link(args: argparse.Namespace) -> int:
    """A presigned GET link to the bucket's copy of the report (esdk-obs-python createSignedUrl)."""
    from shared.report import report_key

    config, obs = _storage()
    key = report_key(config.archive_prefix)
    if obs.head(config.archive_bucket, key) is None:
        print(f"error: no report at {config.archive_bucket}/{key} yet: the collector writes it at the end of a "
              "run; `python -m shared.cli report --out FILE` writes one locally", file=sys.stderr)
        return 1
    signed = obs.client.createSignedUrl("GET", config.archive_bucket, key, expires=args.expires)
    print(signed.signedUrl)
    print(f"valid for {args.expires} s (less if the credentials are temporary and expire first)", file=sys.stderr)
    return 0


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
    setup.add_argument("--worm-days", type=int, default=0, help="WORM: create the archive bucket with object lock "
                       "and a default COMPLIANCE retention of N days (1-36500; versioning on; needs QUEUE_BUCKET "
                       "to be another bucket; retention can only be extended)")
    setup.add_argument("--encryption", choices=("obs", "kms"), help="the archive bucket's default server-side "
                       "encryption: SSE-OBS or SSE-KMS (the archiver asks for ARCHIVE_ENCRYPTION on each object)")
    setup.add_argument("--kms-key-id", help="with --encryption kms: the KMS key (default ARCHIVE_KMS_KEY_ID, else "
                                            "OBS's default key)")
    setup.set_defaults(func=cmd_setup_buckets)
    status = sub.add_parser("status", help="the node-day ledger: every node's every day and its state")
    status.add_argument("--instance", help="one instance, by id or name")
    status.add_argument("--since", help="first day (yyyy-mm-dd; default: the oldest day DCS still holds)")
    status.add_argument("--until", help="last day (yyyy-mm-dd; default: yesterday)")
    status.add_argument("--long", action="store_true", help="one line per node-day, with key, size or reason")
    status.add_argument("--json", action="store_true", help="the ledgers as JSON")
    status.set_defaults(func=cmd_status)
    verify = sub.add_parser("verify", help="check the manifests' hash chain and every archived object they list")
    verify.add_argument("--since", help="first day (yyyy-mm-dd)")
    verify.add_argument("--until", help="last day (yyyy-mm-dd)")
    verify.add_argument("--instance", help="only this instance's objects (id or name)")
    verify.add_argument("--deep", action="store_true", help="re-read and re-hash every object's content")
    verify.add_argument("--workers", type=int, default=8, help="objects checked at once (default 8)")
    verify.add_argument("--all", action="store_true", help="list the checks that passed too")
    verify.set_defaults(func=cmd_verify)
    ls = sub.add_parser("ls", help="an instance's archived node-days: state, sizes, digest counts")
    ls.add_argument("--instance", required=True, help="instance id, or its name")
    ls.add_argument("--since", help="first day: yyyy-mm-dd, today, yesterday or -N (days ago); default: the first")
    ls.add_argument("--until", help="last day (same forms); default: the last")
    ls.add_argument("--json", action="store_true", help="one JSON object per node-day")
    ls.add_argument("--workers", type=int, default=8, help="requests at once (default 8)")
    ls.set_defaults(func=cmd_ls)
    get = sub.add_parser("get", help="the archived lines of an instance, decompressed, on stdout")
    get.add_argument("--instance", required=True, help="instance id, or its name")
    get.add_argument("--since", required=True, help="first day: yyyy-mm-dd, today, yesterday or -N (days ago)")
    get.add_argument("--until", help="last day (same forms); default: the last archived")
    get.add_argument("--node", action="append", help="only this node: its IP, group/IP or group (repeatable)")
    get.add_argument("--merge", action="store_true", help="interleave the nodes of each day in time order, each "
                                                          "line prefixed by its node")
    get.add_argument("--workers", type=int, default=4, help="files read ahead at once (default 4)")
    get.set_defaults(func=cmd_get)
    grep = sub.add_parser("grep", help="search an instance's archived lines (Python regex), files in parallel")
    grep.add_argument("pattern", help="a regular expression (Python syntax); ^ and $ match at line ends")
    grep.add_argument("--instance", required=True, help="instance id, or its name")
    grep.add_argument("--since", required=True, help="first day: yyyy-mm-dd, today, yesterday or -N (days ago)")
    grep.add_argument("--until", help="last day (same forms); default: the last archived")
    grep.add_argument("--node", action="append", help="only this node: its IP, group/IP or group (repeatable)")
    grep.add_argument("-i", "--ignore-case", action="store_true", help="ignore case")
    grep.add_argument("-c", "--count", action="store_true", help="print the count of matching lines per node-day")
    grep.add_argument("--workers", type=int, default=8, help="files searched at once (default 8)")
    grep.set_defaults(func=cmd_grep)
    report = sub.add_parser("report", help="write the HTML report: node x day calendars, digest counts, totals")
    report.add_argument("--out", required=True, help="the file to write (- for stdout)")
    report.add_argument("--since", help="first day: yyyy-mm-dd, yesterday or -N (days ago); default: the first day "
                                        "known, at most 30 days before --until")
    report.add_argument("--until", help="last day (same forms; default and latest: yesterday)")
    report.set_defaults(func=cmd_report)
    link = sub.add_parser("report-link", help="print a presigned link to the report in the archive bucket")
    link.add_argument("--expires", type=int, default=86400, help="seconds the link stays valid (default 86400)")
    link.set_defaults(func=cmd_report_link)
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
