"""The per-fleet lease: overlapping ticks never both hold it; an expired lease can be taken."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from eiplane.aws import reset_clients
from eiplane.matching import lease
from eiplane.settings import get_settings

TABLE = "eiplane-test-state"


@pytest.fixture(autouse=True)
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EIPLANE_STATE_TABLE", TABLE)
    monkeypatch.setenv("EIPLANE_ARTIFACTS_BUCKET", "eiplane-test-artifacts")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    get_settings.cache_clear()
    reset_clients()
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        yield
    reset_clients()
    get_settings.cache_clear()


def test_a_second_tick_cannot_take_a_held_lease() -> None:
    assert lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1000)
    assert not lease.acquire("fleet-a", "tick-2", ttl_s=300, now=1100)


def test_leases_are_per_fleet() -> None:
    assert lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1000)
    assert lease.acquire("fleet-b", "tick-2", ttl_s=300, now=1000)


def test_the_holder_may_renew_it() -> None:
    assert lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1000)
    assert lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1200)


def test_an_expired_lease_can_be_taken() -> None:
    assert lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1000)
    assert lease.acquire("fleet-a", "tick-2", ttl_s=300, now=1301)


def test_only_the_holder_releases_it() -> None:
    assert lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1000)
    assert not lease.release("fleet-a", "tick-2")
    assert not lease.acquire("fleet-a", "tick-2", ttl_s=300, now=1100)
    assert lease.release("fleet-a", "tick-1")
    assert lease.acquire("fleet-a", "tick-2", ttl_s=300, now=1100)


def test_the_lease_outlives_the_longest_drain_it_guards() -> None:
    """serving.deregistration_delay_s may be 3600: a 900 s lease would expire while the tick waits out the drain."""
    assert lease.term_seconds(900, 3600) > 3600 + 600
    assert lease.term_seconds(900, 0) == 900


def test_a_lease_is_taken_over_only_from_the_owner_named_as_dead() -> None:
    assert lease.acquire("fleet-a", "rollout-1", ttl_s=5400, now=1000)
    assert not lease.take_over("fleet-a", "rollout-2", previous_owner="someone-else", ttl_s=5400, now=1100)
    assert lease.take_over("fleet-a", "rollout-2", previous_owner="rollout-1", ttl_s=5400, now=1100)
    # taken: the dead owner's name no longer matches, so a second taker racing the first gets nothing
    assert not lease.take_over("fleet-a", "rollout-3", previous_owner="rollout-1", ttl_s=5400, now=1100)
    assert not lease.acquire("fleet-a", "tick-1", ttl_s=300, now=1200)
