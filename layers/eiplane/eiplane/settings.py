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


ENVIRONMENT = {
    "artifacts_bucket": "EIPLANE_ARTIFACTS_BUCKET",
    "state_table": "EIPLANE_STATE_TABLE",
    "runtime": "EIPLANE_RUNTIME",
    "region": "AWS_REGION",
}


@functools.cache
def get_settings() -> Settings:
    values = {field: os.environ[var] for field, var in ENVIRONMENT.items() if var in os.environ}
    return Settings.model_validate(values)
