"""The DCS API emulator, driven by the real huaweicloudsdkdcs client (signed requests, real HTTP on loopback)."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import (
    ClientRequestException,
    ConnectionException,
    ServerResponseException,
)
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkdcs.v2 import DcsClient
from huaweicloudsdkdcs.v2.model import (
    CreateRedislogDownloadLinkRequest,
    CreateRedislogRequest,
    ListGroupReplicationInfoRequest,
    ListInstancesRequest,
    ListRedislogRequest,
    ShowInstanceRequest,
)

from tests.localcloud.dcs import DcsEmulator, canonical_query, canonical_uri
from tests.localcloud.redislog_text import generate_day

CST = timezone(timedelta(hours=8))
# 10:00 in the log timezone (+08:00) on 21 Nov 2026: the current day is 10/24 done.
MORNING = datetime(2026, 11, 21, 10, 0, tzinfo=CST)
TODAY = date(2026, 11, 21)
YESTERDAY = date(2026, 11, 20)


def sdk(emu: DcsEmulator, *, ak=None, sk=None, project_id=None, token=None, handler=None) -> DcsClient:
    credentials = BasicCredentials(ak or emu.ak, sk or emu.sk, project_id or emu.project_id)
    if token is not None:
        credentials = credentials.with_security_token(token)
    builder = (DcsClient.new_builder().with_credentials(credentials).with_endpoints([emu.endpoint])
               .with_http_config(HttpConfig.get_default_config()))
    if handler is not None:
        builder = builder.with_http_handler(handler)
    return builder.build()


@pytest.fixture
def client(dcs):
    return sdk(dcs)


def collect(client, instance, replication_id=None, query_time=1):
    return client.create_redislog(CreateRedislogRequest(
        instance_id=instance.instance_id, log_type="run", query_time=query_time, replication_id=replication_id))


def list_all(client, instance_id, *, first_offset=1, limit=1000):
    """Every listed entry, paging from `first_offset` by `limit` and deduping by id, like a careful client."""
    seen: dict[str, object] = {}
    offset = first_offset
    while True:
        resp = client.list_redislog(ListRedislogRequest(instance_id=instance_id, log_type="run",
                                                        offset=offset, limit=limit))
        if resp.status_code == 204 or not resp.file_list:
            return list(seen.values())
        for item in resp.file_list:
            seen.setdefault(item.id, item)
        if len(seen) >= resp.total_num:
            return list(seen.values())
        offset += limit


def link_for(client, instance_id, log_id) -> str:
    return client.create_redislog_download_link(
        CreateRedislogDownloadLinkRequest(instance_id=instance_id, id=log_id)).link


def line_times(content: bytes, day: date) -> list[datetime]:
    """The timestamp of each line, as an aware datetime in +08:00."""
    out = []
    for line in content.decode().splitlines():
        stamp = line.split(" ", 5)[4]
        clock = datetime.strptime(stamp, "%H:%M:%S.%f").time()
        out.append(datetime.combine(day, clock, CST))
    return out


# ---------------------------------------------------------------------------------------------------- instances

def test_list_instances_pages_past_1000_and_keeps_only_instances_with_every_tag(dcs, client):
    for n in range(1100):
        dcs.add_instance(name=f"redis-{n:04d}", tags={"archive": "yes", "team": "a"}, cache_mode="single")
    for n in range(30):
        dcs.add_instance(name=f"other-{n}", tags={"archive": "yes", "team": "b"}, cache_mode="single")
    dcs.add_instance(name="untagged", tags={}, cache_mode="single")

    first = client.list_instances(ListInstancesRequest(tags="archive=yes,team=a", offset=0, limit=1000))
    second = client.list_instances(ListInstancesRequest(tags="archive=yes,team=a", offset=1000, limit=1000))

    assert first.instance_num == second.instance_num == 1100
    assert (len(first.instances), len(second.instances)) == (1000, 100)
    ids = {i.instance_id for i in first.instances + second.instances}
    assert len(ids) == 1100
    assert all({(t.key, t.value) for t in i.tags} == {("archive", "yes"), ("team", "a")}
               for i in first.instances + second.instances)
    assert client.list_instances(ListInstancesRequest(tags="archive=yes", limit=1)).instance_num == 1130
    assert client.list_instances(ListInstancesRequest()).instance_num == 1131
    assert len(client.list_instances(ListInstancesRequest()).instances) == 10  # default limit


def test_list_instances_filters_by_status_and_name_and_rejects_a_limit_above_1000(dcs, client):
    running = dcs.add_instance(name="cache-a", tags={"k": "v"})
    frozen = dcs.add_instance(name="cache-b", tags={"k": "v"}, status="FROZEN")

    by_status = client.list_instances(ListInstancesRequest(tags="k=v", status="RUNNING"))
    by_name = client.list_instances(ListInstancesRequest(name="cache-b", name_equal="true"))
    assert [i.instance_id for i in by_status.instances] == [running.instance_id]
    assert [(i.instance_id, i.status) for i in by_name.instances] == [(frozen.instance_id, "FROZEN")]
    summary = by_status.instances[0]
    assert (summary.engine, summary.engine_version, summary.sub_status) == ("Redis", "5.0", "normal")
    assert summary.spec_code

    for bad in (ListInstancesRequest(limit=1001), ListInstancesRequest(limit=0), ListInstancesRequest(offset=-1)):
        with pytest.raises(ClientRequestException) as err:
            client.list_instances(bad)
        assert (err.value.status_code, err.value.error_code) == (400, "DCS.4800")


def test_show_instance_tells_the_cache_mode_that_list_instances_does_not(dcs, client):
    instance = dcs.add_instance(name="c", tags={"t": "1"}, cache_mode="cluster", shards=3, replicas=2)

    shown = client.show_instance(ShowInstanceRequest(instance_id=instance.instance_id))
    listed = client.list_instances(ListInstancesRequest(tags="t=1")).instances[0]

    assert (shown.cache_mode, shown.sharding_count, shown.replica_count) == ("cluster", 3, 2)
    assert listed.to_dict().get("cache_mode") is None
    with pytest.raises(ClientRequestException) as err:
        client.show_instance(ShowInstanceRequest(instance_id="no-such-instance"))
    assert (err.value.status_code, err.value.error_code) == (404, "DCS.3022")


def test_group_replication_lists_every_replica_of_a_cluster_and_refuses_a_single_node(dcs, client):
    cluster = dcs.add_instance(name="c", tags={}, cache_mode="cluster", shards=3, replicas=2)
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")

    groups = client.list_group_replication_info(ListGroupReplicationInfoRequest(instance_id=cluster.instance_id))

    assert groups.group_count == 3
    listed = {(g.group_name, r.replication_id, r.replication_ip, r.replication_role)
              for g in groups.group_list for r in g.replication_list}
    assert listed == {(n.group_name, n.replication_id, n.replication_ip, n.role) for n in cluster.nodes}
    assert sorted(r.replication_role for r in groups.group_list[0].replication_list) == ["master", "slave"]
    assert len({n.replication_ip for n in cluster.nodes}) == 6
    with pytest.raises(ClientRequestException) as err:
        client.list_group_replication_info(ListGroupReplicationInfoRequest(instance_id=single.instance_id))
    assert (err.value.status_code, err.value.error_code) == (400, "DCS.4027")


# ---------------------------------------------------------------------------------------------------- signing

def test_signing_rebuilds_the_canonical_uri_and_query_like_the_sdk():
    assert canonical_uri("/v2/p/instances") == "/v2/p/instances/"
    assert canonical_uri("/v2/p/instances/") == "/v2/p/instances/"
    assert canonical_query("tags=a%3Db%2Cc%3Dd&limit=10&offset=0") == "limit=10&offset=0&tags=a%3Db%2Cc%3Dd"
    assert canonical_query("name=a%20b~") == "name=a%20b~"


def test_a_wrong_secret_key_is_rejected_with_401_and_a_request_id(dcs):
    dcs.add_instance(name="x", tags={})
    with pytest.raises(ClientRequestException) as err:
        sdk(dcs, sk="not-the-secret").list_instances(ListInstancesRequest())
    assert err.value.status_code == 401
    assert err.value.error_code == "APIGW.0301"
    assert err.value.request_id
    assert dcs.requests[-1].status == 401


def test_an_unknown_access_key_is_rejected_with_401(dcs):
    with pytest.raises(ClientRequestException) as err:
        sdk(dcs, ak="UNKNOWNAK").list_instances(ListInstancesRequest())
    assert err.value.status_code == 401


def test_a_wrong_project_id_is_rejected_with_401(dcs):
    with pytest.raises(ClientRequestException) as err:
        sdk(dcs, project_id="ffffffffffffffffffffffffffffffff").list_instances(ListInstancesRequest())
    assert (err.value.status_code, err.value.error_code) == (401, "DCS.1004")


def test_temporary_credentials_need_their_security_token(dcs):
    dcs.add_credentials("TMPAK", "tmp-secret", token="token-1")
    assert sdk(dcs, ak="TMPAK", sk="tmp-secret", token="token-1").list_instances(
        ListInstancesRequest()).instance_num == 0
    with pytest.raises(ClientRequestException) as err:
        sdk(dcs, ak="TMPAK", sk="tmp-secret", token="token-2").list_instances(ListInstancesRequest())
    assert (err.value.status_code, err.value.error_code) == (401, "DCS.1001")
    with pytest.raises(ClientRequestException):
        sdk(dcs, ak="TMPAK", sk="tmp-secret").list_instances(ListInstancesRequest())


def test_a_client_clock_more_than_15_minutes_off_is_rejected_with_apigw_0303(dcs, client):
    dcs.signing_skew_seconds = 14 * 60
    assert client.list_instances(ListInstancesRequest()).instance_num == 0
    dcs.signing_skew_seconds = -16 * 60
    with pytest.raises(ClientRequestException) as err:
        client.list_instances(ListInstancesRequest())
    assert (err.value.status_code, err.value.error_code) == (401, "APIGW.0303")


# ---------------------------------------------------------------------------------------------------- collecting

def test_create_redislog_needs_a_replication_id_on_a_cluster(dcs, client):
    cluster = dcs.add_instance(name="c", tags={}, cache_mode="cluster", shards=2)
    for replication_id in (None, "not-a-replica"):
        with pytest.raises(ClientRequestException) as err:
            collect(client, cluster, replication_id)
        assert (err.value.status_code, err.value.error_code) == (400, "DCS.4800")
    assert collect(client, cluster, cluster.nodes[3].replication_id).status_code == 204
    assert dcs.calls("CreateRedislog", cluster.instance_id)[-1].replication_id == cluster.nodes[3].replication_id


def test_create_redislog_accepts_query_time_0_1_3_7_only_and_log_type_run_only(dcs, client):
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    for query_time in (0, 1, 3, 7):
        assert collect(client, single, query_time=query_time).status_code == 204
    for query_time in (2, 8, -1):
        with pytest.raises(ClientRequestException) as err:
            collect(client, single, query_time=query_time)
        assert (err.value.status_code, err.value.error_code) == (400, "DCS.4800")
    with pytest.raises(ClientRequestException) as err:
        client.create_redislog(CreateRedislogRequest(instance_id=single.instance_id, log_type="slow", query_time=0))
    assert (err.value.status_code, err.value.error_msg) == (400, "Invalid logType.")


def test_create_redislog_on_an_instance_that_is_not_running_is_rejected_with_dcs_4049(dcs, client):
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    dcs.set_status(single.instance_id, "RESTARTING")
    with pytest.raises(ClientRequestException) as err:
        collect(client, single)
    assert (err.value.status_code, err.value.error_code) == (400, "DCS.4049")


def test_list_redislog_answers_204_without_a_file_list_when_nothing_was_collected(dcs, client):
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    resp = client.list_redislog(ListRedislogRequest(instance_id=single.instance_id, log_type="run"))
    assert resp.status_code == 204
    assert resp.file_list is None and resp.total_num is None
    assert resp.raw_content == b""


def test_each_collection_adds_one_new_entry_per_day_with_a_log_and_keeps_the_older_ones(seaweed):
    with DcsEmulator(seaweed, now=MORNING) as emu:
        client = sdk(emu)
        ha = emu.add_instance(name="h", tags={}, cache_mode="ha", missing_days=[TODAY - timedelta(days=2)])
        replica = ha.nodes[1]

        collect(client, ha, replica.replication_id, query_time=3)
        first = list_all(client, ha.instance_id)
        collect(client, ha, replica.replication_id, query_time=1)
        both = list_all(client, ha.instance_id)

    assert sorted(e.time for e in first) == ["2026-11-18", "2026-11-20", "2026-11-21"]
    assert len(both) == 5 and {e.id for e in first} <= {e.id for e in both}
    assert sorted(e.time for e in both) == ["2026-11-18", "2026-11-20", "2026-11-20", "2026-11-21", "2026-11-21"]
    entry = both[0]
    assert entry.file_name == f"redis_{replica.replication_ip}_{entry.time}.log"
    assert (entry.status, entry.replication_ip, entry.group_name, entry.backup_id) == (
        "succeed", replica.replication_ip, "group-0", entry.id)


def test_a_collection_is_listed_only_after_its_delay(seaweed):
    with DcsEmulator(seaweed, collection_delay=0.8) as emu:
        client = sdk(emu)
        single = emu.add_instance(name="s", tags={}, cache_mode="single")
        collect(client, single, query_time=0)

        hidden = client.list_redislog(ListRedislogRequest(instance_id=single.instance_id, log_type="run"))
        emu.in_progress_visible = True
        in_progress = list_all(client, single.instance_id)
        with pytest.raises(ClientRequestException) as err:
            link_for(client, single.instance_id, in_progress[0].id)
        time.sleep(0.9)
        done = list_all(client, single.instance_id)

    assert hidden.status_code == 204
    assert [e.status for e in in_progress] == ["collecting"]
    assert err.value.status_code == 400
    assert [(e.id, e.status) for e in done] == [(in_progress[0].id, "succeed")]


def test_files_leave_the_listing_when_their_day_is_more_than_7_days_old(seaweed):
    with DcsEmulator(seaweed, now=MORNING) as emu:
        client = sdk(emu)
        single = emu.add_instance(name="s", tags={}, cache_mode="single")
        collect(client, single, query_time=7)
        assert len(list_all(client, single.instance_id)) == 8
        emu.clock.advance(days=2)
        kept = list_all(client, single.instance_id)
    assert len(kept) == 6
    assert min(e.time for e in kept) == "2026-11-16"


def test_list_redislog_paging_from_0_or_from_1_reaches_every_entry(seaweed):
    with DcsEmulator(seaweed, now=MORNING) as emu:
        client = sdk(emu)
        cluster = emu.add_instance(name="c", tags={}, cache_mode="cluster", shards=2, replicas=2)
        for node in cluster.nodes:
            collect(client, cluster, node.replication_id, query_time=3)  # 4 days x 4 nodes
        expected = {e.id for e in emu.entries(cluster.instance_id)}

        from_one = list_all(client, cluster.instance_id, first_offset=1, limit=5)
        from_zero = list_all(client, cluster.instance_id, first_offset=0, limit=5)
        one_page = client.list_redislog(ListRedislogRequest(instance_id=cluster.instance_id, log_type="run",
                                                            offset=1, limit=1000))
        past_the_end = client.list_redislog(ListRedislogRequest(instance_id=cluster.instance_id, log_type="run",
                                                                offset=100, limit=5))
        emu.redislog_offset_base = 0
        zero_based_second = client.list_redislog(ListRedislogRequest(instance_id=cluster.instance_id,
                                                                     log_type="run", offset=1, limit=1000))
        with pytest.raises(ClientRequestException) as err:
            client.list_redislog(ListRedislogRequest(instance_id=cluster.instance_id, log_type="run", limit=1001))

    assert len(expected) == 16
    assert {e.id for e in from_one} == {e.id for e in from_zero} == expected
    assert one_page.total_num == 16 and [e.id for e in one_page.file_list] == [
        e.id for e in emu.entries(cluster.instance_id)]
    assert past_the_end.status_code == 200 and past_the_end.file_list == []
    assert [e.id for e in zero_based_second.file_list] == [e.id for e in one_page.file_list[1:]]
    assert (err.value.status_code, err.value.error_code) == (400, "DCS.4800")


# ---------------------------------------------------------------------------------------------------- content and links

def test_a_finished_day_is_copied_whole_and_the_current_day_only_up_to_the_collection(seaweed):
    with DcsEmulator(seaweed, now=MORNING) as emu:
        client = sdk(emu)
        ha = emu.add_instance(name="h", tags={}, cache_mode="ha", log_size=20_000)
        master = ha.nodes[0]
        collect(client, ha, master.replication_id, query_time=1)
        by_day = {e.time: e for e in list_all(client, ha.instance_id)}
        yesterday = requests.get(link_for(client, ha.instance_id, by_day["2026-11-20"].id), timeout=10)
        today = requests.get(link_for(client, ha.instance_id, by_day["2026-11-21"].id), timeout=10)
        whole_day = emu.log_bytes(ha.instance_id, master.replication_ip, TODAY)

        assert yesterday.status_code == 200
        assert yesterday.content == emu.log_bytes(ha.instance_id, master.replication_ip, YESTERDAY)
        assert len(yesterday.content) >= 20_000
        assert today.content == emu.log_bytes(ha.instance_id, master.replication_ip, "2026-11-21", upto=MORNING)

    assert whole_day.startswith(today.content) and 0 < len(today.content) < len(whole_day) * 0.6
    times = line_times(today.content, TODAY)
    assert times == sorted(times) and times[-1] <= MORNING
    assert line_times(whole_day, TODAY)[len(times)] > MORNING  # the next line was logged after the collection
    assert b":M 21 Nov 2026 " in today.content


def test_a_node_log_is_reproducible_roled_and_64_mib_is_generated_within_2_seconds():
    started = time.perf_counter()
    big = generate_day("inst/192.168.0.2", TODAY, 64 * 1024 * 1024, "M")
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0
    assert 64 * 1024 * 1024 <= len(big.content) < 64 * 1024 * 1024 + 1024
    assert big.burst_ms == sorted(big.burst_ms) and big.burst_ms[-1] < 86_400_000
    replica = generate_day("inst/192.168.0.3", TODAY, 4096, "S")
    assert replica.content == generate_day("inst/192.168.0.3", TODAY, 4096, "S").content
    assert replica.content != generate_day("inst/192.168.0.3", YESTERDAY, 4096, "S").content
    roles = {line.split(" ", 1)[0].split(":")[1] for line in replica.content.decode().splitlines()}
    assert roles == {"S", "C"}


def test_a_download_link_is_presigned_on_the_store_returns_the_exact_bytes_then_expires(seaweed):
    with DcsEmulator(seaweed, link_expiry=1) as emu:
        client = sdk(emu)
        single = emu.add_instance(name="s", tags={}, cache_mode="single", log_size=50_000)
        collect(client, single, query_time=1)
        entry = next(e for e in list_all(client, single.instance_id) if e.time != emu.today().isoformat())
        resp = client.create_redislog_download_link(
            CreateRedislogDownloadLinkRequest(instance_id=single.instance_id, id=entry.id))
        got = requests.get(resp.link, timeout=10)
        time.sleep(2.1)
        later = requests.get(resp.link, timeout=10)
        expected = emu.log_bytes(single.instance_id, single.nodes[0].replication_ip, entry.time)

    assert resp.id == resp.backup_id == entry.id
    assert resp.link.startswith(seaweed.endpoint + "/") and "Signature=" in resp.link
    assert got.status_code == 200 and got.content == expected
    assert int(got.headers["Content-Length"]) == len(expected)
    assert later.status_code == 403 and b"expired" in later.content


def test_a_link_for_an_unknown_id_is_404_and_for_a_failed_collection_400(dcs, client):
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    dcs.faults.add("CreateRedislog", "fail_collection", times=1)
    collect(client, single, query_time=0)
    failed = list_all(client, single.instance_id)

    with pytest.raises(ClientRequestException) as unknown:
        link_for(client, single.instance_id, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(ClientRequestException) as not_ready:
        link_for(client, single.instance_id, failed[0].id)

    assert [e.status for e in failed] == ["failed"]
    assert unknown.value.status_code == 404 and unknown.value.error_code.startswith("DCS.")
    assert not_ready.value.status_code == 400
    collect(client, single, query_time=0)  # the fault was for one call only
    assert sorted(e.status for e in list_all(client, single.instance_id)) == ["failed", "succeed"]


# ---------------------------------------------------------------------------------------------------- faults

def test_throttle_answers_429_apig_0308_with_retry_after(dcs):
    seen_headers = []
    handler = HttpHandler().add_response_handler(lambda **kw: seen_headers.append(dict(kw["response"].headers)))
    client = sdk(dcs, handler=handler)
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    dcs.faults.add("CreateRedislog", "throttle", times=1, retry_after=3)

    with pytest.raises(ClientRequestException) as err:
        collect(client, single)
    assert (err.value.status_code, err.value.error_code) == (429, "APIG.0308")
    assert "throttling threshold" in err.value.error_msg
    assert seen_headers[-1]["Retry-After"] == "3"
    assert collect(client, single).status_code == 204
    assert [c.status for c in dcs.calls("CreateRedislog")] == [429, 204]


def test_error500_answers_dcs_5000_for_the_next_n_calls_of_one_instance_only(dcs, client):
    a = dcs.add_instance(name="a", tags={}, cache_mode="single")
    b = dcs.add_instance(name="b", tags={}, cache_mode="single")
    dcs.faults.add("ShowInstance", "error500", times=2, instance_id=a.instance_id)

    assert client.show_instance(ShowInstanceRequest(instance_id=b.instance_id)).name == "b"
    for _ in range(2):
        with pytest.raises(ServerResponseException) as err:
            client.show_instance(ShowInstanceRequest(instance_id=a.instance_id))
        assert (err.value.status_code, err.value.error_code) == (500, "DCS.5000")
    assert client.show_instance(ShowInstanceRequest(instance_id=a.instance_id)).name == "a"


def test_drop_closes_the_connection_without_a_response(dcs, client):
    dcs.faults.add("ListInstances", "drop", times=1)
    with pytest.raises(ConnectionException):
        client.list_instances(ListInstancesRequest())
    assert client.list_instances(ListInstancesRequest()).instance_num == 0
    assert [(c.status, c.fault) for c in dcs.calls("ListInstances")] == [(0, "drop"), (200, None)]


def test_a_faulted_download_goes_through_the_emulator_and_truncate_cuts_it_short(dcs, client):
    dcs.add_instance(name="pad", tags={}, cache_mode="single")
    single = dcs.add_instance(name="s", tags={}, cache_mode="single", log_size=300_000)
    collect(client, single, query_time=1)
    entry = next(e for e in list_all(client, single.instance_id) if e.time != dcs.today().isoformat())
    direct = link_for(client, single.instance_id, entry.id)
    dcs.faults.add("Download", "truncate", times=1)
    cut_link = link_for(client, single.instance_id, entry.id)
    expected = dcs.log_bytes(single.instance_id, single.nodes[0].replication_ip, entry.time)

    resp = requests.get(cut_link, stream=True, timeout=10)
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in resp.iter_content(65536):
            received += chunk
    whole = requests.get(cut_link, timeout=10)  # the fault was for one download only

    assert direct.startswith(dcs.store.endpoint)
    assert cut_link.startswith(dcs.endpoint + "/_download/") and cut_link.endswith(entry.file_name)
    assert int(resp.headers["Content-Length"]) == len(expected)
    assert 0 < len(received) < len(expected) and expected.startswith(bytes(received))
    assert whole.status_code == 200 and whole.content == expected
    downloads = dcs.calls("Download", single.instance_id)
    assert [d.fault for d in downloads] == ["truncate", None]


def test_download_faults_throttle_and_drop_apply_to_the_relayed_link(dcs, client):
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    collect(client, single, query_time=0)
    entry = list_all(client, single.instance_id)[0]
    dcs.faults.add("Download", "throttle", times=1, retry_after=5)
    dcs.faults.add("Download", "drop", times=1)
    link = link_for(client, single.instance_id, entry.id)

    throttled = requests.get(link, timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(link, timeout=10)
    ok = requests.get(link, timeout=10)

    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "5"
    assert ok.status_code == 200
    assert ok.content == dcs.log_bytes(single.instance_id, single.nodes[0].replication_ip, entry.time,
                                       upto=dcs.clock.now())


def test_an_expired_link_is_refused_by_the_store_with_403(dcs, client):
    single = dcs.add_instance(name="s", tags={}, cache_mode="single")
    collect(client, single, query_time=0)
    entry = list_all(client, single.instance_id)[0]
    dcs.faults.add("CreateRedislogDownloadLink", "expired", times=1)

    expired = requests.get(link_for(client, single.instance_id, entry.id), timeout=10)
    fresh = requests.get(link_for(client, single.instance_id, entry.id), timeout=10)

    assert expired.status_code == 403 and b"expired" in expired.content
    assert fresh.status_code == 200


def test_delete_instance_fault_removes_the_instance_then_answers_404_dcs_3022(dcs, client):
    doomed = dcs.add_instance(name="d", tags={"k": "v"}, cache_mode="single")
    dcs.add_instance(name="kept", tags={"k": "v"}, cache_mode="single")
    dcs.faults.add("CreateRedislog", "delete_instance", instance_id=doomed.instance_id)

    with pytest.raises(ClientRequestException) as err:
        collect(client, doomed)
    assert (err.value.status_code, err.value.error_code) == (404, "DCS.3022")
    with pytest.raises(ClientRequestException) as listing:
        client.list_redislog(ListRedislogRequest(instance_id=doomed.instance_id, log_type="run"))
    assert listing.value.status_code == 404
    assert [i.name for i in client.list_instances(ListInstancesRequest(tags="k=v")).instances] == ["kept"]


def test_rate_faults_hit_a_seeded_reproducible_fraction_of_calls(dcs, client):
    def pattern() -> list[bool]:
        outcome = []
        for _ in range(40):
            try:
                client.list_instances(ListInstancesRequest())
                outcome.append(True)
            except ServerResponseException:
                outcome.append(False)
        return outcome

    dcs.faults.add("ListInstances", "error500", rate=0.5)
    dcs.faults.seed(7)
    first = pattern()
    dcs.faults.seed(7)
    second = pattern()
    dcs.faults.clear()

    assert first == second
    assert 8 <= first.count(False) <= 32
    assert all(pattern())


def test_latency_lets_concurrent_calls_overlap_and_peak_in_flight_counts_them(dcs):
    dcs.add_instance(name="s", tags={}, cache_mode="single")
    dcs.faults.latency("ListInstances", 0.4)
    clients = [sdk(dcs) for _ in range(8)]
    dcs.reset_counters()
    results = []

    def call(c):
        results.append(c.list_instances(ListInstancesRequest()).instance_num)

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started

    assert results == [1] * 8
    assert dcs.peak_in_flight == 8
    assert elapsed < 8 * 0.4 / 2
    assert len(dcs.calls("ListInstances")) == 8
    assert all(c.finished - c.started >= 0.4 for c in dcs.calls("ListInstances"))


def test_stop_closes_the_port(seaweed):
    emu = DcsEmulator(seaweed).start()
    assert sdk(emu).list_instances(ListInstancesRequest()).instance_num == 0
    endpoint = emu.endpoint
    emu.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(endpoint + "/v2/x/instances", timeout=2)
