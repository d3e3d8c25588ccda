"""eiplane.settings: the functions' environment, read and validated once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from eiplane.settings import ENVIRONMENT, get_settings

FULL = {
    "EIPLANE_ARTIFACTS_BUCKET": "eiplane-artifacts",
    "EIPLANE_STATE_TABLE": "eiplane-state",
    "EIPLANE_RUNTIME": "embedded",
    "AWS_REGION": "eu-west-1",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_reads_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **FULL)
    settings = get_settings()
    assert settings.artifacts_bucket == "eiplane-artifacts"
    assert settings.state_table == "eiplane-state"
    assert settings.runtime == "embedded"
    assert settings.region == "eu-west-1"


def test_runtime_defaults_to_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **{k: v for k, v in FULL.items() if k != "EIPLANE_RUNTIME"})
    assert get_settings().runtime == "aws"


def test_region_is_aws_region_not_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/conftest.py sets AWS_DEFAULT_REGION=us-east-1; Lambda's AWS_REGION is what counts.
    set_env(monkeypatch, **FULL)
    assert get_settings().region == "eu-west-1"


def test_validated_once_per_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once per sandbox on Lambda; once per function in the embedded AWS, which hosts them all."""
    set_env(monkeypatch, **FULL)
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("EIPLANE_STATE_TABLE", "other-table")  # another function's environment
    assert get_settings().state_table == "other-table"
    monkeypatch.setenv("EIPLANE_STATE_TABLE", FULL["EIPLANE_STATE_TABLE"])
    assert get_settings() is first


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **FULL)
    with pytest.raises(ValidationError, match="frozen"):
        get_settings().artifacts_bucket = "elsewhere"  # type: ignore[misc]


def test_missing_bucket_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **{k: v for k, v in FULL.items() if k != "EIPLANE_ARTIFACTS_BUCKET"})
    with pytest.raises(ValidationError) as caught:
        get_settings()
    errors = caught.value.errors()
    assert [(e["loc"], e["type"]) for e in errors] == [(("artifacts_bucket",), "missing")]
    assert "artifacts_bucket" in str(caught.value)


def test_nothing_set_names_every_required_field() -> None:
    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert sorted(e["loc"][0] for e in caught.value.errors()) == ["artifacts_bucket", "region", "state_table"]


@pytest.mark.parametrize(("variable", "value", "field"), [
    ("EIPLANE_RUNTIME", "local", "runtime"),
    ("EIPLANE_ARTIFACTS_BUCKET", "ab", "artifacts_bucket"),
    ("EIPLANE_STATE_TABLE", "", "state_table"),
    ("AWS_REGION", "", "region"),
])
def test_invalid_values(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str) -> None:
    set_env(monkeypatch, **{**FULL, variable: value})
    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_failed_validation_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        get_settings()
    set_env(monkeypatch, **FULL)
    assert get_settings().artifacts_bucket == "eiplane-artifacts"


def test_environment_names() -> None:
    assert ENVIRONMENT == {
        "artifacts_bucket": "EIPLANE_ARTIFACTS_BUCKET",
        "state_table": "EIPLANE_STATE_TABLE",
        "runtime": "EIPLANE_RUNTIME",
        "region": "AWS_REGION",
        "stack_name": "EIPLANE_STACK_NAME",
        "provision_state_machine": "EIPLANE_PROVISION_STATE_MACHINE",
        "match_interval_minutes": "EIPLANE_MATCH_INTERVAL_MINUTES",
        "launch_minutes": "EIPLANE_LAUNCH_MINUTES",
        "lease_seconds": "EIPLANE_LEASE_SECONDS",
        "instance_boundary_arn": "EIPLANE_INSTANCE_BOUNDARY_ARN",
    }


def test_capacity_matching_settings_have_defaults_and_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **FULL)
    settings = get_settings()
    assert (settings.match_interval_minutes, settings.launch_minutes) == (5, 6)
    assert settings.surge_alarm_prefix == "eiplane-surge-" and settings.provision_state_machine is None
    get_settings.cache_clear()
    set_env(monkeypatch, EIPLANE_STACK_NAME="prod", EIPLANE_LEASE_SECONDS="10")
    with pytest.raises(ValidationError) as caught:
        get_settings()
    assert [e["loc"] for e in caught.value.errors()] == [("lease_seconds",)]
