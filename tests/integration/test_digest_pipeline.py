"""The per-day digest computed while the bytes stream through the copy, as the pipeline stores and reports it:
the ledger, the object's metadata (single PUT), the job's done record, and one alert-ready line per eventful
node-day."""

from __future__ import annotations

import json

from shared.digest import Digest, notable, parse_metadata
from shared.ledger import Ledger, ledger_key
from tests.integration.test_collector import QUEUE, TAGS


def expected_digest(cloud, inst, ip, day) -> dict:
    """The digest of the node's original bytes, computed here from the emulator's copy of the log."""
    digest = Digest(day)
    digest.feed(cloud.emulator.log_bytes(inst.instance_id, ip, day))
    return digest.result()


def test_the_digest_of_each_node_day_reaches_the_ledger_the_metadata_the_record_and_the_alert_line(cloud):
    emu = cloud.emulator
    small = emu.add_instance(name="orders-cache", tags=TAGS, cache_mode="ha", replicas=2, log_size=200_000)
    big = emu.add_instance(name="catalog", tags=TAGS, cache_mode="single", log_size=12 * 2**20)
    env = {"QUERY_TIME_AUTO": "false", "SINGLE_PUT_MAX_MB": "1", "PART_SIZE_MB": "5", "ARCHIVE_COMPRESSION": "none"}
    cloud.run_collector(**env)
    for d in cloud.trigger(**env).drain():
        assert d.ok, d.traceback
    day = cloud.yesterday()
    alerts = [json.loads(x) for x in cloud.log_lines() if '"notable_events"' in x]
    eventful = 0
    for inst in (small, big):
        ledger = Ledger.from_dict(json.loads(cloud.obs.get_bytes(cloud.queue_bucket,
                                                                 ledger_key(QUEUE, inst.instance_id))))
        (done,) = [k for k in cloud.queue_keys("done") if inst.instance_id in k]
        files = {f.get("key"): f for f in json.loads(cloud.obs.get_bytes(cloud.queue_bucket, done))["files"]}
        for node in inst.nodes:
            want = expected_digest(cloud, inst, node.replication_ip, day)
            assert want["lines"] > 100 and want["levels"]["warning"] > 0
            record = ledger.nodes[node.replication_ip].days[day]
            assert record["digest"] == want
            assert files[record["key"]]["digest"] == want
            meta = cloud.read_archived(record["key"]).metadata
            if inst is small:  # one PUT: the digest is in the object's metadata too
                assert parse_metadata(meta["digest"], day)["events"] == want["events"]
            else:  # multipart: the metadata was fixed before the first byte; the ledger and the record keep it
                assert "digest" not in meta
            counts = notable(want)
            mine = [a for a in alerts if a["node"] == node.replication_ip and a["day"] == day]
            if counts:
                eventful += 1
                (alert,) = mine
                assert alert["counts"] == counts and alert["instance_name"] == inst.name
                assert alert["text"].startswith(f"{inst.name} {node.replication_ip} {day}: ")
            else:
                assert mine == []
    assert eventful, "the generated logs hold notable events"
