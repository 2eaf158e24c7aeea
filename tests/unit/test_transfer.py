"""The pure parts of the copy: which download links are fetched, and what of them reaches logs and headers."""

from __future__ import annotations

import string

import pytest

from shared.transfer import LinkRefused, check_link, header_safe, redact_link

SUFFIXES = (".myhuaweicloud.com",)


@pytest.mark.parametrize("url", [
    "https://dcs-logs.obs.cn-north-4.myhuaweicloud.com/path/redis.log?AccessKeyId=x&Signature=y",
    "https://a.b.c.myhuaweicloud.com/x",
    "https://OBS.CN-NORTH-4.MYHUAWEICLOUD.COM/x",
    "HTTPS://obs.cn-north-4.myhuaweicloud.com/x",
    "https://obs.cn-north-4.myhuaweicloud.com:443/x",
    "https://myhuaweicloud.com/x",
])
def test_https_on_a_host_with_the_suffix_is_accepted(url):
    assert check_link(url, SUFFIXES) is None


def test_a_suffix_given_without_the_leading_dot_still_needs_a_label_boundary():
    check_link("https://obs.myhuaweicloud.com/x", ("myhuaweicloud.com",))
    with pytest.raises(LinkRefused):
        check_link("https://evilmyhuaweicloud.com/x", ("myhuaweicloud.com",))


def test_any_of_several_suffixes_is_enough():
    check_link("https://files.example.net/x", (".myhuaweicloud.com", ".example.net"))


@pytest.mark.parametrize("url", [
    "https://evilmyhuaweicloud.com/x",
    "https://myhuaweicloud.com.evil.com/x",
    "https://obs.myhuaweicloud.com.evil.com/x",
    "https://example.com/obs.myhuaweicloud.com/x",
    "https://example.com/?h=.myhuaweicloud.com",
    "https://obs.myhuaweicloud.co/x",
    "https://obs.myhuaweicloud.com./x",
    "https://127.0.0.1/x",
])
def test_a_host_without_the_suffix_is_refused(url):
    with pytest.raises(LinkRefused, match="does not end in"):
        check_link(url, SUFFIXES)


def test_plain_http_is_refused_on_a_good_host():
    with pytest.raises(LinkRefused, match="plain http"):
        check_link("http://obs.cn-north-4.myhuaweicloud.com/x", SUFFIXES)


def test_plain_http_is_allowed_only_for_hosts_named_exactly():
    check_link("http://127.0.0.1:8333/b/k?sig=1", ("127.0.0.1",), ("127.0.0.1",))
    with pytest.raises(LinkRefused, match="plain http"):
        check_link("http://127.0.0.2:8333/b/k", ("127.0.0.1", "127.0.0.2"), ("127.0.0.1",))


def test_an_http_allowed_host_does_not_bypass_the_suffix_check():
    with pytest.raises(LinkRefused, match="does not end in"):
        check_link("http://127.0.0.1:8333/b/k", SUFFIXES, ("127.0.0.1",))


def test_an_http_allowed_host_is_not_a_suffix():
    with pytest.raises(LinkRefused, match="plain http"):
        check_link("http://evil.localhost/x", ("localhost",), ("localhost",))


@pytest.mark.parametrize("url", [
    "https://user@obs.myhuaweicloud.com/x",
    "https://user:pass@obs.myhuaweicloud.com/x",
    "https://obs.myhuaweicloud.com@evil.com/x",
    "https://:pw@obs.myhuaweicloud.com/x",
])
def test_a_link_with_user_info_is_refused(url):
    with pytest.raises(LinkRefused, match="user info"):
        check_link(url, SUFFIXES + (".evil.com", "evil.com"))


@pytest.mark.parametrize("url", [
    "ftp://obs.myhuaweicloud.com/x",
    "file://obs.myhuaweicloud.com/etc/passwd",
    "gopher://obs.myhuaweicloud.com/x",
    "wss://obs.myhuaweicloud.com/x",
])
def test_other_schemes_are_refused(url):
    with pytest.raises(LinkRefused, match="is not https"):
        check_link(url, SUFFIXES)


@pytest.mark.parametrize("url", ["", "not a url", "https:///path", "/relative/path", "file:///etc/passwd"])
def test_a_link_without_a_host_is_refused(url):
    with pytest.raises(LinkRefused, match="no host"):
        check_link(url, SUFFIXES)


def test_refusal_message_never_carries_the_signature():
    with pytest.raises(LinkRefused) as info:
        check_link("http://obs.myhuaweicloud.com/k?Signature=SECRETSIG", SUFFIXES)
    assert "SECRETSIG" not in str(info.value)


def test_redact_link_drops_the_query_and_fragment():
    assert redact_link("https://h.myhuaweicloud.com/a/b.log?AccessKeyId=AK&Signature=S#frag") == \
        "https://h.myhuaweicloud.com/a/b.log"


def test_redact_link_keeps_scheme_host_port_and_path():
    assert redact_link("http://127.0.0.1:8333/bucket/key") == "http://127.0.0.1:8333/bucket/key"


def test_redact_link_drops_a_password_in_the_link():
    assert "hunter2" not in redact_link("https://user:hunter2@h.myhuaweicloud.com/x?sig=1")


@pytest.mark.parametrize("value", ["192.168.0.142", "group-0", "redis_192.168.0.142_2026-11-21.log", "gzip",
                                   "2026-11-21", "a:b/c+d=e@f,g~h"])
def test_plain_header_values_are_kept(value):
    assert header_safe(value) == value


@pytest.mark.parametrize("value", ["日志", "é", "a\nb", "a\r\nX-Injected: 1", "\x00", "\x7f", "tab\there", "a%b"])
def test_header_values_are_ascii_printable_without_line_breaks(value):
    out = header_safe(value)
    assert out.isascii()
    assert all(ch in string.printable and ch not in "\r\n\t\x0b\x0c" for ch in out)
    assert out != value


def test_header_values_are_bounded():
    assert len(header_safe("x" * 5000)) == 1024
    assert len(header_safe("日" * 5000)) <= 1024


def test_header_safe_takes_any_value():
    assert header_safe(12345) == "12345"
    assert header_safe(None) == "None"
