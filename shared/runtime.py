"""What the function takes from its runtime: credentials and the invocation's deadline."""

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
    """The invocation's time budget, from `getRemainingTimeInMilliSeconds()` less a safety margin."""

    def __init__(self, remaining_seconds: Optional[float], margin_seconds: float = 0.0) -> None:
        self._end = None if remaining_seconds is None else time.monotonic() + remaining_seconds - margin_seconds

    @classmethod
    def from_context(cls, context: Any, margin_seconds: float) -> Deadline:
        remaining = None
        method = getattr(context, "getRemainingTimeInMilliSeconds", None)
        if method is not None:
            try:
                remaining = float(method()) / 1000.0
            except (TypeError, ValueError):
                remaining = None
        return cls(remaining, margin_seconds)

    def remaining(self) -> float:
        """Seconds left before new work must stop (infinite off the platform without a context)."""
        if self._end is None:
            return float("inf")
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0
