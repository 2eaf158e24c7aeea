"""The SDK retry hook: which failures are retried, and how long to wait before the next try."""

from __future__ import annotations

import random

import pytest
from huaweicloudsdkcore.exceptions.exceptions import (
    CallTimeoutException,
    ClientRequestException,
    ConnectionException,
    HostUnreachableException,
    RequestTimeoutException,
    SdkError,
    SdkException,
    ServerResponseException,
    SslHandShakeException,
)

from shared.dcs import (
    BUSY_CODE,
    RETRY_AFTER_CAP,
    DcsError,
    InstanceGone,
    RetryPolicy,
    _parse_retry_after,
    build_client,
    is_retryable,
)
from shared.runtime import Credentials


class Highest(random.Random):
    """Always the top of the jitter range, so the bound itself is observed."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def client_error(status: int, code: str = "DCS.4000", retry_after: float | None = None) -> ClientRequestException:
    exc = ClientRequestException(status, SdkError(request_id="req-1", error_code=code, error_msg="msg"))
    if retry_after is not None:
        exc.retry_after = retry_after
    return exc


def server_error(status: int = 500, code: str = "DCS.5000") -> ServerResponseException:
    return ServerResponseException(status, SdkError(request_id="req-2", error_code=code, error_msg="oops"))


def delay_after(policy: RetryPolicy, exc: BaseException, retries: int = 1) -> int:
    policy.should_retry(None, exc)
    return policy.calculate_retry_delay_millis(retries)


# --- is_retryable -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [
    client_error(429, "APIGW.0308"),
    server_error(500), server_error(502, "APIGW.0201"), server_error(503), server_error(504),
    client_error(400, BUSY_CODE),
    client_error(409, BUSY_CODE),
    ConnectionException("reset"), HostUnreachableException("unreachable"), SslHandShakeException("ssl"),
    RequestTimeoutException("timeout"), CallTimeoutException("read timeout"),
])
def test_throttling_server_errors_busy_instance_and_connection_trouble_are_retried(exc):
    assert is_retryable(exc)


@pytest.mark.parametrize("exc", [
    client_error(400, "DCS.4001"), client_error(401, "APIGW.0301"), client_error(403, "DCS.4030"),
    client_error(404, "DCS.3022"), client_error(404, "DCS.4001"), client_error(409, "DCS.4049"),
    None, ValueError("x"), SdkException("generic"),
])
def test_other_client_errors_and_non_sdk_failures_are_final(exc):
    assert not is_retryable(exc)


def test_busy_code_is_the_documented_one():
    assert BUSY_CODE == "DCS.4017"


# --- RetryPolicy ----------------------------------------------------------------------------------------------

def test_should_retry_follows_is_retryable_and_counts_attempts():
    policy = RetryPolicy()
    assert policy.should_retry(None, server_error()) is True
    assert policy.should_retry(None, client_error(400)) is False
    assert policy.should_retry("response", None) is False
    assert policy.attempts == 3


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 3.0, 60.0])
def test_a_retry_after_on_the_exception_is_honoured_with_a_little_jitter(retry_after):
    low = delay_after(RetryPolicy(rng=Lowest()), client_error(429, retry_after=retry_after), retries=5)
    high = delay_after(RetryPolicy(rng=Highest()), client_error(429, retry_after=retry_after), retries=5)
    assert low == int(retry_after * 1000)
    assert high == int((retry_after + 0.5) * 1000)


def test_retry_after_wins_over_the_exponential_backoff_on_any_status():
    exc = server_error(503)
    exc.retry_after = 7.0
    assert delay_after(RetryPolicy(rng=Lowest()), exc, retries=1) == 7000


def test_a_429_without_retry_after_waits_the_gateways_advised_2_to_5_seconds():
    assert delay_after(RetryPolicy(rng=Lowest()), client_error(429), retries=1) == 2000
    assert delay_after(RetryPolicy(rng=Highest()), client_error(429), retries=1) == 5000


@pytest.mark.parametrize("retries, bound", [(1, 500), (2, 1000), (3, 2000), (4, 4000), (5, 8000), (6, 16000),
                                            (7, 20000), (12, 20000)])
def test_backoff_is_exponential_from_the_base_and_capped(retries, bound):
    assert delay_after(RetryPolicy(rng=Highest()), server_error(), retries) == bound


def test_backoff_has_full_jitter_down_to_zero():
    assert delay_after(RetryPolicy(rng=Lowest()), server_error(), 4) == 0


def test_jittered_delays_stay_within_their_bounds():
    policy = RetryPolicy(rng=random.Random(1234))
    delays = []
    for retries in range(1, 11):
        for _ in range(50):
            delay = delay_after(policy, ConnectionException("reset"), retries)
            assert 0 <= delay <= min(20000, 500 * 2 ** (retries - 1))
            delays.append(delay)
    assert len(set(delays)) > 100  # jittered, not one fixed value


@pytest.mark.parametrize("retries, bound", [(1, 5000), (2, 10000), (3, 20000), (8, 20000)])
def test_a_busy_instance_waits_from_a_longer_base(retries, bound):
    assert delay_after(RetryPolicy(rng=Highest()), client_error(400, BUSY_CODE), retries) == bound


def test_busy_backoff_is_longer_than_the_ordinary_one():
    busy = delay_after(RetryPolicy(rng=Highest()), client_error(400, BUSY_CODE), 1)
    ordinary = delay_after(RetryPolicy(rng=Highest()), server_error(), 1)
    assert busy > ordinary


def test_custom_base_and_cap_are_used():
    policy = RetryPolicy(base=1.0, cap=3.0, rng=Highest())
    assert delay_after(policy, server_error(), 1) == 1000
    assert delay_after(policy, server_error(), 2) == 2000
    assert delay_after(policy, server_error(), 3) == 3000


def test_the_delay_follows_the_last_failure_seen():
    policy = RetryPolicy(rng=Highest())
    assert delay_after(policy, client_error(429, retry_after=9.0), 1) == 9500
    assert delay_after(policy, server_error(), 1) == 500


# --- Retry-After parsing and DcsError -------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("3", 3.0), ("0.5", 0.5), ("0", 0.0), ("-4", 0.0), ("3600", RETRY_AFTER_CAP),
    (None, None), ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("", None),
])
def test_retry_after_header_is_read_as_bounded_seconds(value, seconds):
    assert _parse_retry_after(value) == seconds


def test_dcs_error_names_operation_instance_code_and_request_id():
    err = DcsError("CreateRedislog", status=400, code="DCS.4017", message="busy", request_id="req-9",
                   instance_id="i-1")
    assert str(err) == "CreateRedislog instance i-1: 400 DCS.4017 busy request_id=req-9"
    assert err.as_dict() == {"op": "CreateRedislog", "status": 400, "code": "DCS.4017", "message": "busy",
                             "request_id": "req-9", "instance_id": "i-1"}


def test_dcs_error_without_status_or_ids_still_reads():
    assert str(DcsError("ListInstances", status=None, code="CONNECTION", message="reset")) == \
        "ListInstances: - CONNECTION reset"


def test_dcs_error_dict_bounds_the_message():
    assert len(DcsError("op", status=500, code="x", message="m" * 1000).as_dict()["message"]) == 300


def test_instance_gone_is_a_dcs_error():
    assert issubclass(InstanceGone, DcsError)


@pytest.mark.parametrize("bundle", [None, "/etc/ssl/corp.pem"])
def test_the_dcs_clients_session_reads_the_environment_once_when_it_names_no_proxy(bundle, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                 "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if bundle:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    client = build_client("https://dcs.example.com", Credentials("AK" + (bundle or "x"), "SK"), "p" * 32)
    http = client.get_http_client()
    assert http._session.trust_env is False, "no per-request scan of os.environ"
    assert http._verify == (bundle or True), "the environment's CA bundle still verifies the DCS endpoint"
