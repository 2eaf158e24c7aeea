"""Archive keys: deterministic, readable, and unable to escape the prefix or collide, whatever the API names."""

from __future__ import annotations

import random
import re

import pytest

from shared.keys import (
    MAX_COMPONENT,
    FileKey,
    file_key,
    has_any,
    instance_prefix,
    is_day,
    safe_component,
)

PREFIX = "redis-run-logs/"
INSTANCE = "5560df16-cebf-4473-95c4-d1b573c16e79"
DAY = "2026-11-21"
SAFE_KEY = re.compile(r"^[A-Za-z0-9._~/-]+$")

HOSTILE = [
    "../../x", "..", ".", "...", "/etc/passwd", "/", "//", "a//b", "a/b", "a_b", "a b", "a\\b", "a\x00b", "a\nb",
    "\r\n", "\t", "x" * 1000, "x" * 1001, "", " ", "~", "a~b", "redis.log.gz", "redis.log.partial",
    "redis.log.partial.gz", "redis.log", "redis.log.GZ", ".hidden", "hidden", "_hidden", "日志.log", "é", "e\u0301",
    "%2e%2e%2f", "..%2f", "?query=1", "#frag", "\x7f", "\ud800", "a" * MAX_COMPONENT, "a" * (MAX_COMPONENT + 1),
    "-", "--", "CON", "redis_192.168.0.142_2026-11-21.log",
]


def hostile_names(count: int, seed: int = 20261121) -> list[str]:
    """Names built from the characters that break keys: separators, dots, controls, unicode, suffixes."""
    rng = random.Random(seed)
    alphabet = list("./\\~_- %?#:@aAzZ09") + ["..", "\x00", "\n", "\x1f", "é", "日", "\u202e", ".gz", ".partial"]
    names = set(HOSTILE)
    while len(names) < count:
        length = rng.choice([0, 1, 2, 3, 5, 8, 20, 99, 100, 101, 150])
        names.add("".join(rng.choice(alphabet) for _ in range(length)))
    return sorted(names)


NAMES = hostile_names(3000)


def check_key(key: str) -> None:
    assert key.startswith(PREFIX), key
    assert "//" not in key, key
    assert SAFE_KEY.match(key), key
    segments = key[len(PREFIX):].split("/")
    assert len(segments) == 4, key  # instance / day / group / file: nothing climbed or dug
    for segment in segments:
        assert segment not in ("", ".", ".."), key
        assert not segment.startswith("."), key


# --- safe_component --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["redis_192.168.0.142_2026-11-21.log", "group-0", INSTANCE, "a.b-c_d", "a..b"])
def test_clean_names_are_kept_as_they_are(name):
    assert safe_component(name) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_every_component_is_safe_short_and_never_empty(name):
    component = safe_component(name)
    assert component
    assert re.match(r"^[A-Za-z0-9._~-]+$", component)
    assert not component.startswith(".")
    assert component not in (".", "..")
    assert len(component) <= MAX_COMPONENT + 11


def test_a_changed_name_carries_a_hash_after_a_tilde():
    component = safe_component("a/b")
    stem, sep, digest = component.rpartition("~")
    assert (stem, sep) == ("a_b", "~")
    assert re.match(r"^[0-9a-f]{10}$", digest)


def test_an_empty_name_gets_a_placeholder():
    assert safe_component("").startswith("_~")


def test_a_long_name_is_shortened_with_its_hash():
    long = safe_component("x" * 1000)
    assert long.startswith("x" * MAX_COMPONENT + "~")
    assert len(long) == MAX_COMPONENT + 11
    assert safe_component("x" * 1000) != safe_component("x" * 1001)


@pytest.mark.parametrize("name", ["redis.log.gz", "redis.log.partial", "x.partial.gz", ".gz", ".partial"])
def test_names_ending_in_our_own_suffixes_are_changed(name):
    assert safe_component(name) != name
    assert not safe_component(name).endswith((".gz", ".partial"))


def test_components_of_different_names_never_coincide():
    components = [safe_component(n) for n in NAMES]
    assert len(set(components)) == len(NAMES)


def test_keys_are_stable_across_runs_and_releases():
    # archive keys must never change, or every finished day would be archived again under a new key
    assert safe_component("") == "_~e3b0c44298"
    assert safe_component("../../x") == "_.._x~9cdf6a5010"
    assert safe_component("redis.log.gz") == "redis.log.gz~f0ebdd3af7"
    assert safe_component("a/b") == "a_b~c14cddc033"


def test_sanitising_is_deterministic():
    assert [safe_component(n) for n in NAMES] == [safe_component(n) for n in NAMES]


# --- file keys ---------------------------------------------------------------------------------------------

def test_key_reads_as_instance_day_group_file():
    key = file_key(PREFIX, INSTANCE, DAY, "group-0", "redis_192.168.0.142_2026-11-21.log")
    assert key.stem == f"{PREFIX}{INSTANCE}/{DAY}/group-0/redis_192.168.0.142_2026-11-21.log"
    assert key.final("gzip") == key.stem + ".gz"
    assert key.final("none") == key.stem
    assert key.partial("gzip") == key.stem + ".partial.gz"
    assert key.partial("none") == key.stem + ".partial"


def test_variants_cover_both_compressions():
    key = FileKey("p/i/d/g/f")
    assert key.final_variants() == ("p/i/d/g/f", "p/i/d/g/f.gz")
    assert key.partial_variants() == ("p/i/d/g/f.partial", "p/i/d/g/f.partial.gz")


def test_empty_group_name_still_makes_a_full_key():
    key = file_key(PREFIX, INSTANCE, DAY, "", "redis.log")
    check_key(key.stem)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_name_stays_under_the_instance_day_and_group(name):
    key = file_key(PREFIX, INSTANCE, DAY, "group-0", name)
    for variant in (key.final("gzip"), key.final("none"), key.partial("gzip"), key.partial("none")):
        check_key(variant)
    assert key.stem.startswith(f"{PREFIX}{INSTANCE}/{DAY}/group-0/")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_group_and_instance_names_stay_under_the_prefix(name):
    key = file_key(PREFIX, name, DAY, name, "redis.log")
    check_key(key.final("gzip"))
    assert instance_prefix(PREFIX, name).startswith(PREFIX)
    assert key.stem.startswith(instance_prefix(PREFIX, name))


def test_generated_hostile_names_all_give_safe_distinct_keys():
    keys = []
    for name in NAMES:
        key = file_key(PREFIX, INSTANCE, DAY, "group-0", name)
        keys += [key.final("gzip"), key.final("none"), key.partial("gzip"), key.partial("none")]
    for key in keys:
        check_key(key)
    assert len(set(keys)) == len(keys)


def test_generated_hostile_group_names_all_give_distinct_keys():
    keys = [file_key(PREFIX, INSTANCE, DAY, name, "redis.log").final("gzip") for name in NAMES]
    for key in keys:
        check_key(key)
    assert len(set(keys)) == len(keys)


def test_group_and_file_cannot_trade_a_slash_to_share_a_key():
    a = file_key(PREFIX, INSTANCE, DAY, "g/x", "f").final("gzip")
    b = file_key(PREFIX, INSTANCE, DAY, "g", "x/f").final("gzip")
    assert a != b


def test_a_file_named_like_another_files_compressed_copy_gets_another_key():
    plain = file_key(PREFIX, INSTANCE, DAY, "g", "redis.log")
    posing = file_key(PREFIX, INSTANCE, DAY, "g", "redis.log.gz")
    assert posing.final("none") != plain.final("gzip")
    assert posing.stem not in plain.final_variants() + plain.partial_variants()


def test_a_file_named_like_another_files_partial_copy_gets_another_key():
    plain = file_key(PREFIX, INSTANCE, DAY, "g", "redis.log")
    posing = file_key(PREFIX, INSTANCE, DAY, "g", "redis.log.partial")
    assert set(posing.final_variants()).isdisjoint(plain.partial_variants())


def test_file_keys_are_deterministic():
    args = (PREFIX, "../i", DAY, "g\n", "../../x")
    assert file_key(*args) == file_key(*args)


def test_different_days_give_different_keys():
    assert file_key(PREFIX, INSTANCE, "2026-11-21", "g", "f") != file_key(PREFIX, INSTANCE, "2026-11-22", "g", "f")


@pytest.mark.parametrize("day", ["", "2026-1-1", "../..", "2026/11/21", "21-11-2026", "2026-11-21T00:00:00",
                                 "2026-11-21/..", "x2026-11-21"])
def test_a_day_that_is_not_yyyy_mm_dd_is_refused(day):
    assert not is_day(day)
    with pytest.raises(ValueError, match="yyyy-mm-dd"):
        file_key(PREFIX, INSTANCE, day, "g", "f")


@pytest.mark.parametrize("day", ["2026-11-21\n", "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0661",
                                 "\uff12\uff10\uff12\uff16-\uff11\uff11-\uff12\uff11"])
def test_a_day_with_a_newline_or_non_ascii_digits_is_refused(day):
    assert not is_day(day)


def test_is_day_accepts_a_plain_date():
    assert is_day("2026-11-21")
    assert not is_day(None)


def test_has_any_returns_the_first_candidate_present():
    assert has_any({"b", "c"}, ["a", "b", "c"]) == "b"
    assert has_any({"x"}, ["a", "b"]) is None
    assert has_any(set(), []) is None
