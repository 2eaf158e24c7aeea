"""Fixtures of the local cloud: one SeaweedFS per test session; everything else per test."""

from __future__ import annotations

import uuid

import pytest

from tests.localcloud.seaweed import SeaweedFS


@pytest.fixture(scope="session")
def seaweed():
    """A running SeaweedFS (S3 gateway on loopback) for the whole session, stopped at the end."""
    with SeaweedFS() as store:
        yield store


@pytest.fixture
def obs(seaweed):
    """An esdk-obs-python client on the local store, closed after the test."""
    client = seaweed.client()
    yield client
    client.close()


@pytest.fixture
def bucket(obs, seaweed):
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    resp = obs.createBucket(name)
    assert resp.status < 300, (resp.status, resp.errorCode, resp.errorMessage)
    yield name
    seaweed.delete_bucket(name)


@pytest.fixture
def dcs(seaweed):
    """A DCS API emulator on loopback over the session's store (its own internal bucket), stopped after the test."""
    from tests.localcloud.dcs import DcsEmulator

    with DcsEmulator(seaweed) as emulator:
        yield emulator
    seaweed.delete_bucket(emulator.internal_bucket)
