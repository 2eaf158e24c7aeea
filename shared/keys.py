"""Archive keys: deterministic, readable, and safe whatever the API puts in a name.

    <archive prefix><instance_id>/<yyyy-mm-dd>/<group_name>/<file_name>[.partial][.gz]

Every component is sanitised to a safe character set; a component that had to change (or be shortened) gets
a short hash of its original, after a `~` that clean names never contain, so two different names can never
end on one key and no name can climb out of the prefix.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Optional

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DAY = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")  # ASCII digits, no trailing newline
MAX_COMPONENT = 100
PARTIAL_SUFFIX = ".partial"
COMPRESSED_SUFFIX = ".gz"


def safe_component(name: str) -> str:
    """One key component: [A-Za-z0-9._-] only, no leading dot, at most ~110 characters, never empty."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    # a name ending like our own suffixes could pose as another file's partial or compressed copy
    reserved = cleaned.endswith((PARTIAL_SUFFIX, COMPRESSED_SUFFIX))
    if cleaned == name and cleaned and len(cleaned) <= MAX_COMPONENT and not reserved:
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{(cleaned or '_')[:MAX_COMPONENT]}~{digest}"


def is_day(text: str) -> bool:
    return bool(_DAY.match(text or ""))


@dataclass(frozen=True)
class FileKey:
    """Where one node's log of one day goes: the key's stem, before the partial and compression suffixes."""

    stem: str

    def final(self, compression: str) -> str:
        return self.stem + (COMPRESSED_SUFFIX if compression == "gzip" else "")

    def partial(self, compression: str) -> str:
        return self.stem + PARTIAL_SUFFIX + (COMPRESSED_SUFFIX if compression == "gzip" else "")

    def final_variants(self) -> tuple[str, str]:
        """A final copy counts whichever compression it was written with."""
        return self.stem, self.stem + COMPRESSED_SUFFIX

    def partial_variants(self) -> tuple[str, str]:
        return self.stem + PARTIAL_SUFFIX, self.stem + PARTIAL_SUFFIX + COMPRESSED_SUFFIX


def instance_prefix(archive_prefix: str, instance_id: str) -> str:
    return f"{archive_prefix}{safe_component(instance_id)}/"


def file_key(archive_prefix: str, instance_id: str, day: str, group_name: str, file_name: str) -> FileKey:
    if not is_day(day):
        raise ValueError(f"log day {day!r} is not yyyy-mm-dd")
    return FileKey(f"{instance_prefix(archive_prefix, instance_id)}{day}/{safe_component(group_name)}/"
                   f"{safe_component(file_name)}")


def has_any(keys: set[str], candidates: Iterable[str]) -> Optional[str]:
    for candidate in candidates:
        if candidate in keys:
            return candidate
    return None
