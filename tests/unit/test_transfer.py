"""The copy: which download links are fetched, what of them reaches logs and headers, and (on fakes) which OBS
calls a copy makes and what metadata it writes."""

from __future__ import annotations

import gzip
import hashlib
import random
import string
import threading
import zlib

import pytest

from shared.transfer import CopyError, LinkRefused, _ParallelGzip, check_link, copy_link, header_safe, redact_link

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


# --- the copy, on fakes: which OBS calls it makes and what metadata it writes -------------------------------

MiB = 2**20


class _Raw:
    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.pos, self.chunk = data, 0, chunk

    def read(self, size: int, decode_content: bool = False) -> bytes:
        out = self.data[self.pos:self.pos + min(size, self.chunk)]
        self.pos += len(out)
        return out


class _Response:
    def __init__(self, data: bytes, length_header: bool, chunk: int) -> None:
        self.status_code = 200
        self.headers = {"Content-Length": str(len(data))} if length_header else {}
        self.raw = _Raw(data, chunk)

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Session:
    def __init__(self, data: bytes, length_header: bool = True, chunk: int = MiB) -> None:
        self.data, self.length_header, self.chunk = data, length_header, chunk

    def get(self, url: str, **kwargs: object) -> _Response:
        return _Response(self.data, self.length_header, self.chunk)


class _Obs:
    """Records the calls copy_link makes; has no copy call at all, so a self-copy would raise."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.parts: dict[int, bytes] = {}
        self.lock = threading.Lock()

    def put_buffer(self, bucket, key, data, *, metadata=None, content_type="", storage_class=None):
        self.calls.append(("put", key, dict(metadata or {}), storage_class, bytes(data)))
        return "etag"

    def initiate_multipart(self, bucket, key, *, metadata=None, content_type="", storage_class=None):
        self.calls.append(("initiate", key, dict(metadata or {}), storage_class))
        return "upload-1"

    def upload_part(self, bucket, key, upload_id, number, data):
        with self.lock:
            self.parts[number] = bytes(data)
        return f"etag-{number}"

    def complete_multipart(self, bucket, key, upload_id, etags):
        self.calls.append(("complete", key, list(etags)))

    def abort_multipart(self, bucket, key, upload_id):
        self.calls.append(("abort", key, upload_id))

    def ops(self) -> list[str]:
        return [c[0] for c in self.calls]

    def joined_parts(self) -> bytes:
        return b"".join(self.parts[n] for n in sorted(self.parts))


def _log_bytes(size: int) -> bytes:
    line = b"1:M 21 Nov 2026 10:00:00.000 * Background saving started by pid 42\n"
    return (line * (size // len(line) + 1))[:size]


def _random_bytes(size: int) -> bytes:
    return random.Random(7).randbytes(size)


META = {"source-id": "RL-1", "compression": "none"}


def test_a_file_within_the_single_put_threshold_is_one_put_carrying_size_and_sha256():
    data = _log_bytes(3 * MiB + 5)
    obs = _Obs()
    result = copy_link(_Session(data), "https://x", obs, "b", "k.log", metadata=META, compression="none",
                       part_size=5 * MiB, single_put_max=4 * MiB, storage_class="COLD")
    assert obs.ops() == ["put"]
    _, _, metadata, storage_class, body = obs.calls[0]
    assert body == data and storage_class == "COLD"
    assert metadata == {**META, "original-size": str(len(data)), "sha256": hashlib.sha256(data).hexdigest()}
    assert result.sha256_in_metadata and not result.multipart
    assert (result.bytes_in, result.bytes_out, result.sha256) == (len(data), len(data),
                                                                  hashlib.sha256(data).hexdigest())


def test_a_large_file_is_multipart_with_the_original_size_at_initiation_and_its_sha256_in_the_result():
    data = _random_bytes(12 * MiB + 3)
    obs = _Obs()
    result = copy_link(_Session(data), "https://x", obs, "b", "k.log", metadata=META, compression="none",
                       part_size=5 * MiB, single_put_max=4 * MiB, storage_class="COLD")
    assert obs.ops() == ["initiate", "complete"], "no copy of the object onto itself, no second write"
    _, _, metadata, storage_class = obs.calls[0]
    assert metadata == {**META, "original-size": str(len(data))} and storage_class == "COLD"
    assert obs.joined_parts() == data
    assert all(len(obs.parts[n]) >= 5 * MiB for n in sorted(obs.parts)[:-1])
    assert result.multipart and not result.sha256_in_metadata
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.bytes_in == len(data)


def test_compressed_output_within_the_threshold_is_one_put_even_when_the_original_is_larger():
    data = _log_bytes(40 * MiB)
    obs = _Obs()
    result = copy_link(_Session(data), "https://x", obs, "b", "k.log.gz", metadata=META, compression="gzip",
                       part_size=5 * MiB, single_put_max=16 * MiB)
    assert obs.ops() == ["put"]
    assert gzip.decompress(obs.calls[0][4]) == data
    assert obs.calls[0][2]["sha256"] == hashlib.sha256(data).hexdigest() and result.sha256_in_metadata


@pytest.mark.parametrize("deflate_threads", [1, 2, 3])
def test_compressed_output_past_the_threshold_turns_multipart_with_parts_of_at_least_the_part_size(deflate_threads):
    data = _random_bytes(14 * MiB)  # incompressible: the output passes the threshold
    obs = _Obs()
    result = copy_link(_Session(data), "https://x", obs, "b", "k.log.gz", metadata=META, compression="gzip",
                       part_size=5 * MiB, single_put_max=6 * MiB, deflate_threads=deflate_threads)
    assert obs.ops() == ["initiate", "complete"]
    assert gzip.decompress(obs.joined_parts()) == data
    assert all(len(obs.parts[n]) >= 5 * MiB for n in sorted(obs.parts)[:-1])
    assert result.multipart and result.bytes_out == len(obs.joined_parts())


def test_a_small_file_of_unknown_length_is_one_put_with_its_checksum():
    data = _log_bytes(2 * MiB)
    obs = _Obs()
    result = copy_link(_Session(data, length_header=False), "https://x", obs, "b", "k.log", metadata=META,
                       compression="none", part_size=5 * MiB, single_put_max=4 * MiB)
    assert obs.ops() == ["put"] and obs.calls[0][2]["original-size"] == str(len(data))
    assert result.sha256_in_metadata


def test_a_large_file_of_unknown_length_has_no_size_at_initiation():
    data = _random_bytes(9 * MiB)
    obs = _Obs()
    copy_link(_Session(data, length_header=False), "https://x", obs, "b", "k.log", metadata=META,
              compression="none", part_size=5 * MiB, single_put_max=4 * MiB)
    assert obs.ops() == ["initiate", "complete"] and obs.calls[0][2] == META
    assert obs.joined_parts() == data


def test_the_tap_sees_every_original_chunk_in_order_off_the_download_thread():
    data = _log_bytes(7 * MiB + 11)
    seen, threads = [], set()

    def tap(chunk: bytes) -> None:
        seen.append(bytes(chunk))
        threads.add(threading.get_ident())

    for compression in ("gzip", "none"):
        seen.clear()
        threads.clear()
        result = copy_link(_Session(data, chunk=300_000), "https://x", _Obs(), "b", "k", metadata=META,
                           compression=compression, part_size=5 * MiB, single_put_max=4 * MiB, tap=tap)
        assert b"".join(seen) == data and result.tap_error is None
        assert threads and threading.get_ident() not in threads


def test_a_failing_tap_is_reported_and_does_not_fail_the_copy():
    data = _log_bytes(3 * MiB)
    calls = []

    def tap(chunk: bytes) -> None:
        calls.append(len(chunk))
        raise ValueError("digest broke")

    obs = _Obs()
    result = copy_link(_Session(data), "https://x", obs, "b", "k", metadata=META, compression="none",
                       part_size=5 * MiB, single_put_max=4 * MiB, tap=tap)
    assert obs.ops() == ["put"] and obs.calls[0][4] == data
    assert result.tap_error == "ValueError: digest broke" and len(calls) == 1, "not called again"


def test_a_truncated_download_aborts_the_multipart_upload_and_writes_nothing():
    data = _random_bytes(12 * MiB)
    session = _Session(data)
    session.get = lambda url, **kw: _truncated(data)  # type: ignore[method-assign]
    obs = _Obs()
    with pytest.raises(CopyError, match="truncated"):
        copy_link(session, "https://x", obs, "b", "k", metadata=META, compression="none",
                  part_size=5 * MiB, single_put_max=4 * MiB)
    assert obs.ops() == ["initiate", "abort"]


def _truncated(data: bytes) -> _Response:
    resp = _Response(data, True, MiB)
    resp.raw = _Raw(data[:len(data) - MiB], MiB)
    return resp


# --- gzip on several threads: one member that any gunzip reads, of about one thread's size ---------------------

def _gunzip_one_member(blob: bytes) -> bytes:
    """The content of a gzip blob that must be exactly one member (trailer checked by zlib: CRC-32 and size)."""
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(blob) + d.flush()
    assert d.eof and d.unused_data == b"", "one member, nothing after it"
    return out


def _parallel(chunks: list[bytes], level: int = 6, threads: int = 2) -> bytes:
    z = _ParallelGzip(level, threads)
    try:
        return b"".join([z.feed(c) for c in chunks] + [z.finish()])
    finally:
        z.close()


@pytest.mark.parametrize("sizes", [
    [],  # an empty file
    [1],
    [10, 0, 20_000],  # chunks shorter than the window, and an empty one
    [MiB, MiB, 300_000],
    [5_000] * 40,  # the window spans several small chunks
])
@pytest.mark.parametrize("threads", [2, 3])
def test_parallel_gzip_is_one_member_holding_exactly_the_input(sizes, threads):
    data = _log_bytes(sum(sizes)) if sum(sizes) else b""
    chunks, pos = [], 0
    for n in sizes:
        chunks.append(data[pos:pos + n])
        pos += n
    blob = _parallel(chunks, threads=threads)
    assert blob[:3] == b"\x1f\x8b\x08"
    assert _gunzip_one_member(blob) == data
    assert gzip.decompress(blob) == data


def test_parallel_gzip_of_random_bytes_and_of_every_level():
    data = _random_bytes(3 * MiB + 17)
    for level in (0, 1, 6, 9):
        assert _gunzip_one_member(_parallel([data[i:i + MiB] for i in range(0, len(data), MiB)], level)) == data


def test_parallel_gzip_is_about_the_size_of_one_thread_gzip():
    """Each chunk is primed with the 32 KiB before it, as one stream's window: text that repeats across a chunk
    boundary still compresses (without the priming, every chunk would start cold)."""
    rng = random.Random(3)
    words = [("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))).encode()
             for _ in range(5000)]
    data = b" ".join(rng.choice(words) for _ in range(700_000))
    chunks = [data[i:i + MiB] for i in range(0, len(data), MiB)]
    one = zlib.compressobj(6, zlib.DEFLATED, 31)
    serial = len(one.compress(data) + one.flush())
    parallel = len(_parallel(chunks))
    assert serial * 0.99 < parallel < serial * 1.01, (serial, parallel)
    # the priming matters: chunks of 40 KiB compressed cold would be larger
    assert len(_parallel([data[i:i + 40_000] for i in range(0, len(data), 40_000)])) < serial * 1.01


def test_a_failed_gzip_copy_leaves_no_deflate_thread_behind():
    data = _random_bytes(14 * MiB)

    class _Refusing(_Obs):
        def upload_part(self, bucket, key, upload_id, number, data):
            raise RuntimeError("store refused the part")

    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="refused the part"):
        copy_link(_Session(data), "https://x", _Refusing(), "b", "k.log.gz", metadata=META, compression="gzip",
                  part_size=5 * MiB, single_put_max=6 * MiB, deflate_threads=2)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not [n for n in left if n.startswith("deflate")], left


def test_a_compression_failing_at_the_end_of_the_stream_fails_the_copy_without_hanging():
    """The last chunks are deflated when the stream ends: an error there is reported, not waited on forever."""
    data = _log_bytes(300_000)  # one chunk: its deflate's error surfaces only in finish()
    outcome: list = []

    def copy() -> None:
        try:
            copy_link(_Session(data), "https://x", _Obs(), "b", "k.log.gz", metadata=META, compression="gzip",
                      level=42, part_size=5 * MiB, single_put_max=6 * MiB, deflate_threads=2)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    worker = threading.Thread(target=copy, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the copy hung after the compressor failed"
    assert outcome and isinstance(outcome[0], ValueError), outcome
