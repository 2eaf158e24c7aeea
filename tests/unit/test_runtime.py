"""The invocation's deadline: the remaining time the runtime reports, and the fallback when it is implausible."""

from __future__ import annotations

import pytest
import requests

from shared.runtime import Deadline, ca_bundle, trust_environment_only_for_proxies
from tests.localcloud.functiongraph import Context


class _Runtime:
    """A context whose remaining time and timeout are whatever a runtime reports."""

    def __init__(self, remaining_ms: object, timeout: object = None) -> None:
        self.remaining_ms, self.timeout = remaining_ms, timeout

    def getRemainingTimeInMilliSeconds(self) -> object:
        return self.remaining_ms

    def getRunningTimeInSeconds(self) -> object:
        if self.timeout is None:
            raise AttributeError("not offered")
        return self.timeout


def test_a_plausible_remaining_time_is_used_less_the_margin():
    deadline = Deadline.from_context(Context(timeout=300, echo_logs=False), 30, env={})
    assert 265 < deadline.remaining() <= 270
    assert deadline.fallback is None and deadline.report() == {}


def test_a_remaining_time_below_the_margin_at_the_start_falls_back_to_the_configured_timeout():
    # one public runtime computes the remaining time from a timeout defaulting to 3 s when unset
    deadline = Deadline.from_context(_Runtime(3000, timeout=900), 30, env={})
    assert 865 < deadline.remaining() <= 870, "not parked at once"
    assert not deadline.expired()
    assert "3.0 s remaining" in deadline.fallback and "900 s" in deadline.fallback
    assert deadline.report() == {"deadline_fallback": deadline.fallback}


def test_the_configured_timeout_may_come_from_the_runtime_timeout_preset():
    deadline = Deadline.from_context(_Runtime(0), 30, env={"RUNTIME_TIMEOUT": "600"})
    assert 565 < deadline.remaining() <= 570
    assert "RUNTIME_TIMEOUT" in deadline.fallback


def test_a_remaining_time_equal_to_the_margin_is_not_believed_either():
    deadline = Deadline.from_context(_Runtime(30_000, timeout=120), 30, env={})
    assert 85 < deadline.remaining() <= 90


def test_without_a_larger_timeout_the_reported_time_stands_and_says_so():
    deadline = Deadline.from_context(_Runtime(3000), 30, env={})
    assert deadline.expired()
    assert "no larger configured timeout" in deadline.fallback


@pytest.mark.parametrize("timeout", ["900", 900, 900.0])
def test_the_timeout_is_read_whatever_its_type(timeout):
    assert Deadline.from_context(_Runtime("2000", timeout=timeout), 30, env={}).remaining() > 860


def test_no_context_means_no_deadline():
    deadline = Deadline.from_context(object(), 30, env={})
    assert deadline.remaining() == float("inf") and deadline.fallback is None


def test_an_unreadable_remaining_time_means_no_deadline():
    assert Deadline.from_context(_Runtime("soon"), 30, env={}).remaining() == float("inf")


def test_the_local_context_started_long_ago_reports_little_time_and_the_timeout_is_used():
    clock = [1000.0]
    ctx = Context(timeout=900, start=1000.0 - 898, clock=lambda: clock[0], echo_logs=False)
    assert ctx.getRemainingTimeInMilliSeconds() == 2000
    deadline = Deadline.from_context(ctx, 30, env={})
    assert deadline.remaining() > 860 and "900 s (getRunningTimeInSeconds())" in deadline.fallback


# --- what a requests session reads from the environment ----------------------------------------------------------

def _merged(session: requests.Session) -> dict:
    """What requests would use for one request given verify=True and no proxies (the SDK's call)."""
    return session.merge_environment_settings("https://dcs.example", {}, None, None, None)


@pytest.mark.parametrize("env", [
    {},
    {"PATH": "/usr/bin", "RUNTIME_NAME": "Python3.10", "no_proxy_here": "x"},
    {"HTTPS_PROXY": ""},  # set but empty: no proxy (urllib skips empty values too)
])
def test_a_session_skips_the_environment_when_it_names_no_proxy(env, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    assert trust_environment_only_for_proxies(session, env) is False
    assert session.trust_env is False
    assert _merged(session)["verify"] is True and not _merged(session)["proxies"]


@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_without_a_proxy_the_environments_ca_bundle_is_taken_once(name, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    env = {name: "/etc/ssl/corp.pem"}
    assert ca_bundle(env) == "/etc/ssl/corp.pem"
    session = requests.Session()
    assert trust_environment_only_for_proxies(session, env) is False
    assert _merged(session)["verify"] == "/etc/ssl/corp.pem", "the bundle applies as if read per request"


def test_requests_ca_bundle_wins_over_curls_as_in_requests():
    assert ca_bundle({"REQUESTS_CA_BUNDLE": "/a.pem", "CURL_CA_BUNDLE": "/b.pem"}) == "/a.pem"
    assert ca_bundle({"CURL_CA_BUNDLE": "/b.pem"}) == "/b.pem"
    assert ca_bundle({"REQUESTS_CA_BUNDLE": ""}) is None


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "all_proxy"])
def test_a_session_keeps_reading_the_environment_when_it_sets_a_proxy(name, monkeypatch):
    monkeypatch.setenv(name, "http://proxy.corp:3128")
    session = requests.Session()
    assert trust_environment_only_for_proxies(session, {name: "http://proxy.corp:3128"}) is True
    assert session.trust_env is True
    assert "http://proxy.corp:3128" in _merged(session)["proxies"].values()
