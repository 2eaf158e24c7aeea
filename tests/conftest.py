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
def bucket(obs):
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    resp = obs.createBucket(name)
    assert resp.status < 300, (resp.status, resp.errorCode, resp.errorMessage)
    return name
