"""What the function takes from its runtime: credentials, the invocation's deadline, the HTTP environment."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from shared.config import ConfigError


@dataclass(frozen=True)
class Credentials:
    ak: str
    sk: str
    security_token: Optional[str] = None

    def __repr__(self) -> str:  # never show the values
        return f"Credentials(ak={self.ak[:4]}..., temporary={self.security_token is not None})"


def _call(context: Any, name: str) -> Optional[str]:
    method = getattr(context, name, None)
    if method is None:
        return None
    try:
        value = method()
    except Exception:
        return None
    return value or None


def credentials_from(context: Any, env: Optional[Mapping[str, str]] = None) -> Credentials:
    """The agency's temporary keys from the context on the platform, else the SDK's environment variables."""
    env = os.environ if env is None else env
    ak = _call(context, "getSecurityAccessKey")
    sk = _call(context, "getSecuritySecretKey")
    if ak and sk:
        return Credentials(ak, sk, _call(context, "getSecurityToken"))
    ak, sk = env.get("HUAWEICLOUD_SDK_AK"), env.get("HUAWEICLOUD_SDK_SK")
    if ak and sk:
        return Credentials(ak, sk, env.get("HUAWEICLOUD_SDK_SECURITY_TOKEN") or None)
    raise ConfigError("credentials: none found. On FunctionGraph give the function an agency (the context's "
                      "getSecurityAccessKey/SecretKey/Token are empty without one); elsewhere set "
                      "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (and HUAWEICLOUD_SDK_SECURITY_TOKEN for "
                      "temporary keys)")


class Deadline:
    """The invocation's time budget, from `getRemainingTimeInMilliSeconds()` less a safety margin.

    `fallback` says why the reported remaining time was not used, when it was not (for the summary line)."""

    def __init__(self, remaining_seconds: Optional[float], margin_seconds: float = 0.0, *,
                 fallback: Optional[str] = None) -> None:
        self._end = None if remaining_seconds is None else time.monotonic() + remaining_seconds - margin_seconds
        self.fallback = fallback

    @classmethod
    def from_context(cls, context: Any, margin_seconds: float,
                     env: Optional[Mapping[str, str]] = None) -> Deadline:
        """At the start of an invocation. A reported remaining time at or below the margin is not believed: a
        public runtime implementation computes it from a timeout that defaults to 3 s when unset, which would
        park every job at once. The function's configured timeout (`getRunningTimeInSeconds()`, else the
        RUNTIME_TIMEOUT preset) is used instead, and `fallback` says so."""
        env = os.environ if env is None else env
        remaining = _number(context, "getRemainingTimeInMilliSeconds")
        remaining = None if remaining is None else remaining / 1000.0
        if remaining is None or remaining > margin_seconds:
            return cls(remaining, margin_seconds)
        timeout = _number(context, "getRunningTimeInSeconds")
        source = "getRunningTimeInSeconds()"
        if timeout is None:
            timeout, source = _positive(env.get("RUNTIME_TIMEOUT")), "RUNTIME_TIMEOUT"
        reported = f"the runtime reported {remaining:.1f} s remaining at the start, not above the " \
                   f"{margin_seconds:g} s margin"
        if timeout is None or timeout <= remaining:
            return cls(remaining, margin_seconds, fallback=f"{reported}; no larger configured timeout to use")
        return cls(timeout, margin_seconds,
                   fallback=f"{reported}: the configured timeout {timeout:g} s ({source}) is used instead")

    def report(self) -> dict:
        """For the summary line: {"deadline_fallback": why} when the reported remaining time was not used."""
        return {"deadline_fallback": self.fallback} if self.fallback else {}

    def remaining(self) -> float:
        """Seconds left before new work must stop (infinite off the platform without a context)."""
        if self._end is None:
            return float("inf")
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0


def _number(context: Any, name: str) -> Optional[float]:
    method = getattr(context, name, None)
    if method is None:
        return None
    try:
        return float(method())
    except Exception:  # noqa: BLE001 - a value that is not a number, or a failing method, is as if absent
        return None


def _positive(raw: Optional[str]) -> Optional[float]:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


# What a requests session that trusts the environment (Session.trust_env, the default) reads on EVERY request:
# the proxy variables (os.environ scanned twice a request), its CA-bundle variables, and ~/.netrc. On an ordinary
# run the proxy scan was a third of the collector's CPU per DCS call (13.8 s of 38.6 s in tests/bench/collector.py
# under yappi, 400 instances at concurrency 32), for an environment that names no proxy.


def ca_bundle(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The CA bundle the environment gives requests, as requests reads it: REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE."""
    env = os.environ if env is None else env
    return env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None


def trust_environment_only_for_proxies(session: Any, env: Optional[Mapping[str, str]] = None) -> bool:
    """Let a requests session read the environment per request only when it sets a proxy (a `*_proxy` variable,
    in any case, as urllib reads them). Else the rest is taken once, here: the CA bundle (ca_bundle) becomes the
    session's `verify`; ~/.netrc is left out (a Basic authorization from it would only break a signed DCS call or a
    presigned link). Returns whether the session still reads the environment."""
    env = os.environ if env is None else env
    proxied = any(name.lower().endswith("_proxy") and value for name, value in env.items())
    session.trust_env = proxied
    bundle = ca_bundle(env)
    if bundle and not proxied:
        session.verify = bundle
    return proxied
