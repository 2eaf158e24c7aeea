"""Which instances qualify for collection: pure decisions on plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from shared.dcs import Instance, Replica

MIN_VERSION = (4, 0)  # run logs exist on Redis 4.0 and later (DCS user manual)


@dataclass(frozen=True)
class Skipped:
    instance_id: str
    name: str
    reason: str


def parse_version(text: str) -> Optional[tuple[int, ...]]:
    numbers = re.findall(r"[0-9]+", text or "")
    if not numbers:
        return None
    version = tuple(int(n) for n in numbers[:3])
    return version + (0,) * (2 - len(version))  # "4" is 4.0


def skip_reason(instance: Instance, tags: Iterable[tuple[str, str]]) -> Optional[str]:
    """Why an instance is not collected, or None when it qualifies.

    The server already filters by tags; this checks again because the filter's semantics are not ours to trust
    (and manual runs name instances directly).
    """
    carried = dict(instance.tags)
    for key, value in tags:
        if key not in carried:
            return f"missing tag {key}"
        if carried[key] != value:
            return f"tag {key} has another value"
    if instance.engine.lower() != "redis":
        return f"engine {instance.engine or '?'} is not Redis"
    version = parse_version(instance.engine_version)
    if version is None or version < MIN_VERSION:
        return f"Redis {instance.engine_version or '?'} has no run logs (4.0 or later needed)"
    if instance.status != "RUNNING":
        return f"status {instance.status or '?'}, not RUNNING"
    return None


def qualify(instances: Iterable[Instance], tags: Iterable[tuple[str, str]]) -> tuple[list[Instance],
                                                                                      list[Skipped]]:
    tags = tuple(tags)
    matched, skipped = [], []
    for inst in instances:
        reason = skip_reason(inst, tags)
        if reason is None:
            matched.append(inst)
        else:
            skipped.append(Skipped(inst.instance_id, inst.name, reason))
    return matched, skipped


def replicas_to_collect(replicas: Iterable[Replica], which: str) -> list[Replica]:
    """All replicas, or the masters only (`REPLICAS=master`)."""
    replicas = list(replicas)
    if which == "master":
        return [r for r in replicas if r.role == "master"]
    return replicas
