"""Reading the archive back (`python -m shared.cli ls|get|grep`) on files the real pipeline archived on the local
cloud: a cluster of 2 shards x 2 replicas over 7 finished days and a partial copy of today, and a single node."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

from shared import cli
from shared.digest import Digest, LineClock
from tests.integration.test_archiver import pipeline
from tests.integration.test_collector import TAGS

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = "redis-run-logs/"
META = ("source-id", "source-file", "instance-id", "instance-name", "group", "replication-ip", "log-day",
        "compression", "copy", "job-id", "archived-at", "original-size", "sha256")


def archive(cloud):
    """Two instances archived by the collector and the archiver: `catalog` (cluster, 4 nodes, 7 finished days
    and today's partial copy, collected at noon) and `orders` (one node)."""
    emu = cloud.emulator
    today = emu.today()
    emu.clock.set(datetime.fromisoformat(f"{today.isoformat()}T12:00:00+08:00"))
    catalog = emu.add_instance(name="catalog", tags=TAGS, cache_mode="cluster", shards=2, replicas=2,
                               log_size=24_000)
    orders = emu.add_instance(name="orders", tags=TAGS, cache_mode="single", log_size=8_000)
    pipeline(cloud, QUERY_TIME="7", ARCHIVE_OPEN_DAY="true")
    return catalog, orders


def run(capsysbinary, *argv: str) -> tuple[int, bytes, str]:
    code = cli.main(list(argv))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def original(cloud, inst, node, day: str) -> bytes:
    emu = cloud.emulator
    if day == emu.today().isoformat():
        return emu.log_bytes(inst.instance_id, node.replication_ip, day, upto=emu.clock.now())
    return emu.log_bytes(inst.instance_id, node.replication_ip, day)


def node_order(inst):
    return sorted(inst.nodes, key=lambda n: (n.group_name, n.replication_ip))


def test_ls_lists_every_node_day_with_state_sizes_and_digest_counts_by_id_or_name(cloud, capsysbinary):
    catalog, orders = archive(cloud)
    days = cloud.final_days(catalog.instance_id)
    today = cloud.emulator.today().isoformat()
    assert len(days) == 7
    # the listing and the objects' metadata alone, as for an archive older than the node-day ledger (the ledger,
    # when there is one, is read instead: test_ls_prefers_the_ledger...)
    cloud.obs.delete(cloud.queue_bucket, f"redis-run-log-jobs/ledger/{catalog.instance_id}.json")

    # give one object a digest of its own (the archiver's copy may write one for every object)
    node = node_order(catalog)[1]
    key = f"{ARCHIVE}{catalog.instance_id}/{days[2]}/{node.group_name}/redis_{node.replication_ip}_{days[2]}.log.gz"
    d = Digest(days[2])
    d.feed(original(cloud, catalog, node, days[2]) + b"5:S 01 Jan 2000 00:00:00.000 # Connection with master lost.\n")
    head = cloud.obs.head(cloud.archive_bucket, key)
    cloud.obs.replace_metadata(cloud.archive_bucket, key, {**{k: head[k] for k in META}, "digest": d.to_metadata()},
                               content_type="application/gzip")

    code, out, err = run(capsysbinary, "ls", "--instance", "catalog", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert [(r["day"], r["group"], r["node"]) for r in rows] == [
        (day, n.group_name, n.replication_ip) for day in days + [today] for n in node_order(catalog)]
    assert {r["state"] for r in rows if r["day"] == today} == {"partial"}
    assert {r["state"] for r in rows if r["day"] != today} == {"archived"}
    sizes = {o.key: o.size for o in cloud.obs.list(cloud.archive_bucket, ARCHIVE)}
    for r in rows:
        data = original(cloud, catalog, catalog.node_by_ip(r["node"]), r["day"])
        assert r["original_size"] == len(data) and r["stored_size"] == sizes[r["key"]]
        assert r["instance_name"] == "catalog" and r["label"] == f"{r['group']}/{r['node']}"
    (marked,) = [r for r in rows if r["key"] == key]
    assert marked["digest"] == d.result() and marked["digest"]["events"]["master_lost"] >= 1
    for r in rows:  # the digests the archiver wrote during the copy, if it writes them
        if r["digest"] and r["key"] != key:
            of_bytes = Digest(r["day"])
            of_bytes.feed(original(cloud, catalog, catalog.node_by_ip(r["node"]), r["day"]))
            assert r["digest"] == of_bytes.result(), r["key"]

    # by id, one day, as a table
    code, out, err = run(capsysbinary, "ls", "--instance", catalog.instance_id, "--since", days[2], "--until", days[2])
    assert code == 0, err
    text = out.decode().splitlines()
    assert text[0].startswith(f"instance {catalog.instance_id} (catalog): 4 node-days, 1 days")
    assert len(text) == 2 + 4
    line = next(t for t in text if f"{node.group_name}/{node.replication_ip}" in t)
    assert f"master_lost={d.result()['events']['master_lost']}" in line
    assert str(d.result()["lines"]) in line


def test_get_streams_each_file_byte_exact_and_merge_interleaves_the_nodes_in_time_order(cloud, capsysbinary):
    catalog, orders = archive(cloud)
    days = cloud.final_days(catalog.instance_id)

    code, out, err = run(capsysbinary, "get", "--instance", "catalog", "--since", days[1], "--until", days[3])
    assert code == 0, err
    assert out == b"".join(original(cloud, catalog, n, day) for day in days[1:4] for n in node_order(catalog))

    one = node_order(catalog)[3]
    code, out, _ = run(capsysbinary, "get", "--instance", "catalog", "--since", days[0], "--until", days[0], "--node",
                       one.replication_ip)
    assert code == 0 and out == original(cloud, catalog, one, days[0])

    code, out, _ = run(capsysbinary, "get", "--instance", "orders", "--since", days[-1], "--until", days[-1])
    assert code == 0 and out == original(cloud, orders, orders.nodes[0], days[-1])

    code, out, err = run(capsysbinary, "get", "--instance", "catalog", "--since", days[4], "--until", days[5],
                         "--merge")
    assert code == 0, err
    by_label: dict[bytes, list[bytes]] = {}
    times = []
    clock = LineClock(date.fromisoformat(days[4]))  # the generated lines carry their year
    for line in out.splitlines(keepends=True):
        label, rest = line.split(b" ", 1)
        by_label.setdefault(label, []).append(rest)
        times.append(clock(rest))
    assert times == sorted(times), "merged lines are in time order"
    for n in node_order(catalog):
        label = f"{n.group_name}/{n.replication_ip}".encode()
        assert b"".join(by_label[label]) == b"".join(original(cloud, catalog, n, day) for day in days[4:6])


def test_grep_searches_many_files_and_prints_day_and_node_with_each_hit_or_counts(cloud, capsysbinary):
    catalog, _ = archive(cloud)
    days = cloud.final_days(catalog.instance_id)
    pattern = re.compile(rb"^.*connection with (master|replica).*$", re.I | re.M)

    expected, counts = [], []
    for day in days:
        for n in node_order(catalog):
            label = f"{n.group_name}/{n.replication_ip}"
            hits = [m.group(0) for m in pattern.finditer(original(cloud, catalog, n, day))]
            expected += [f"{day} {label} ".encode() + h + b"\n" for h in hits]
            counts.append(f"{day} {label} {len(hits)}".encode())
    assert len(expected) > 20

    code, out, err = run(capsysbinary, "grep", "Connection WITH (master|replica)", "-i", "--instance", "catalog",
                         "--since", days[0], "--until", days[-1], "--workers", "3")
    assert code == 0, err
    assert out.splitlines(keepends=True) == expected
    assert f"{len(expected)} matching line(s) in {len(days) * 4} node-day(s)" in err

    code, out, _ = run(capsysbinary, "grep", "Connection with (master|replica)", "-c", "--instance",
                       catalog.instance_id, "--since", days[0], "--until", days[-1])
    assert code == 0 and out.splitlines() == counts

    code, out, _ = run(capsysbinary, "grep", "no such text anywhere", "--instance", "catalog", "--since", days[0])
    assert code == 1 and out == b""


def test_an_unknown_instance_or_a_bad_argument_is_refused_with_what_is_known(cloud, capsysbinary):
    archive(cloud)
    code, _, err = run(capsysbinary, "ls", "--instance", "no-such-cache")
    assert code == 2 and "no instance 'no-such-cache'" in err and "catalog" in err and "orders" in err
    code, _, err = run(capsysbinary, "grep", "(unclosed", "--instance", "orders", "--since", "-3")
    assert code == 2 and "pattern" in err
    code, _, err = run(capsysbinary, "get", "--instance", "orders", "--since", "2024-13-45")
    assert code == 2 and "yyyy-mm-dd" in err


def test_get_into_a_pipe_closed_early_stops_quietly(cloud):
    catalog, _ = archive(cloud)
    env = {**os.environ, **cloud.env, "PYTHONPATH": str(ROOT)}
    cmd = (f"{sys.executable} -m shared.cli get --instance catalog --since {cloud.final_days(catalog.instance_id)[0]}"
           f" --merge | head -n 3")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3 and "Traceback" not in done.stderr


def test_ls_prefers_the_ledger_and_shows_the_node_days_without_an_object(cloud, capsysbinary):
    emu = cloud.emulator
    inst = emu.add_instance(name="sessions", tags=TAGS, cache_mode="ha", replicas=2, log_size=20_000)
    master, standby = inst.nodes
    quiet_day = (emu.today() - date.resolution * 3).isoformat()
    emu.set_node_missing_days(inst.instance_id, standby.replication_ip, [quiet_day])
    env = {"API_MAX_RETRIES": "0", "COLLECT_POLL_SECONDS": "0.1"}
    pipeline(cloud, **env)
    code, out, err = run(capsysbinary, "ls", "--instance", "sessions", "--json")
    assert code == 0, err
    rows = {(r["node"], r["day"]): r for r in map(json.loads, out.decode().splitlines())}
    assert rows[(standby.replication_ip, quiet_day)]["state"] == "no-log"
    archived = rows[(master.replication_ip, quiet_day)]
    assert archived["state"] == "archived" and archived["digest"]["lines"] > 0 and archived["sha256"]
