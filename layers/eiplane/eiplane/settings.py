"""Function settings from the environment (template.yaml Globals), validated once."""

from __future__ import annotations

import functools
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    artifacts_bucket: str = Field(min_length=3)
    state_table: str = Field(min_length=3)
    # "embedded" only on the local engine (moto); it is what lets the legacy eia backend run.
    runtime: Literal["aws", "embedded"] = "aws"
    region: str = Field(min_length=1, description="the stack's region (Lambda sets AWS_REGION)")
    # Capacity matching (set on the MatchCapacity functions only).
    stack_name: str = Field(default="eiplane", min_length=1, description="names the surge alarms and executions")
    provision_state_machine: str | None = Field(default=None, description="ProvisionFleet's ARN: scale-out runs it")
    match_interval_minutes: int = Field(default=5, ge=1, description="N: the schedule that runs MatchCapacity")
    launch_minutes: int = Field(default=6, ge=0, description="L: launch to validated and in service")
    lease_seconds: int = Field(default=900, ge=60, description="a tick's hold on a fleet; expires if the tick dies")
    instance_boundary_arn: str | None = Field(
        default=None, description="the permissions boundary every fleet instance role is created under "
                                  "(set on the functions that plan and create the roles)")

    @property
    def surge_alarm_prefix(self) -> str:
        """Every fleet's surge alarm is named <prefix><fleet>; the template's alarm rule matches it."""
        return f"{self.stack_name}-surge-"


ENVIRONMENT = {
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


def get_settings() -> Settings:
    """The settings of this environment, validated once per environment: on Lambda once per
    sandbox; in the embedded AWS, which hosts every function in one process, once per function."""
    return _settings(tuple((field, os.environ.get(var)) for field, var in ENVIRONMENT.items()))


@functools.cache
def _settings(values: tuple[tuple[str, str | None], ...]) -> Settings:
    return Settings.model_validate({field: value for field, value in values if value is not None})


get_settings.cache_clear = _settings.cache_clear  # type: ignore[attr-defined]
