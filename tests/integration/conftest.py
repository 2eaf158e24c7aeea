"""The whole local cloud for pipeline tests: the DCS emulator on the session's SeaweedFS, fresh buckets, and the
environment a deployed function would have."""

from __future__ import annotations

import uuid

import pytest

from tests.localcloud.dcs import DcsEmulator
from tests.localcloud.pipeline import LocalCloud


@pytest.fixture
def cloud(seaweed, monkeypatch):
    """A LocalCloud; its environment is also set in os.environ, as the platform sets a function's variables."""
    suffix = uuid.uuid4().hex[:10]
    emulator = DcsEmulator(seaweed, ak=seaweed.access_key, sk=seaweed.secret_key).start()
    local = LocalCloud(seaweed, emulator, archive_bucket=f"archive-{suffix}", queue_bucket=f"queue-{suffix}")
    local.create_buckets()
    for name, value in local.env.items():
        monkeypatch.setenv(name, value)
    try:
        yield local
    finally:
        local.close()
        emulator.stop()
        for name in (local.archive_bucket, local.queue_bucket, emulator.internal_bucket):
            seaweed.delete_bucket(name)
