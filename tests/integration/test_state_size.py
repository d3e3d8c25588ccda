"""What passes between states does not grow with the fleet: slot references and counts, the slots'
outcomes in their records and the whole report in S3. (Step Functions fails an execution whose state
passes 256 KB, and States.ALL does not catch it: before, a fleet of 43 or more instances failed after
its instances were in service.) The 100-instance figure is `eiplane bench control-plane-cost`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eiplane.executions import largest_state
from eiplane.local.engine import EmbeddedAws
from tests.integration.conftest import fleet_report, spec_for
from tests.integration.test_launch import push_artifact

LIMIT = 64 * 1024  # the project's own bound, a quarter of Step Functions' 262,144 bytes


@pytest.fixture
def gpu(aws: EmbeddedAws, torchscript_artifact: Path) -> dict[str, Any]:
    push_artifact(aws, "demo-gpu", torchscript_artifact)
    spec = spec_for("gpu")
    spec["model"] = {"name": "tiny-cnn", "version": "1", "precisions": ["fp32"]}
    return spec


def test_the_largest_state_hardly_grows_with_the_fleet(aws: EmbeddedAws, gpu: dict[str, Any]) -> None:
    sizes = {}
    for desired in (1, 4):
        result = aws.run({**gpu, "capacity": {"min": 0, "desired": desired, "max": 4}}, name=f"gpu-{desired}")
        assert result.status == "SUCCEEDED", result.cause
        sizes[desired] = largest_state(result.events)

    (small, _), (large, where) = sizes[1], sizes[4]
    assert large < LIMIT, where
    # A slot adds its reference (index and generation) to the plan the Map reads, nothing more.
    assert large - small < 3 * 200, (sizes, where)


def test_the_output_is_a_summary_and_the_whole_report_is_in_s3(aws: EmbeddedAws, gpu: dict[str, Any]) -> None:
    result = aws.run({**gpu, "capacity": {"min": 0, "desired": 2, "max": 2}}, name="gpu-1")

    assert "instances" not in result.output and "mutating_calls" not in result.output
    assert result.output["report"]["key"] == f"fleets/demo-gpu/reports/{result.arn.rsplit(':', 1)[-1]}.json"
    report = fleet_report(aws, result)
    assert len(report["instances"]) == 2 and all(i["validation"]["passed"] for i in report["instances"])
    assert result.output["mutating_call_count"] == len(report["mutating_calls"])
    # nothing in the history carries a slot's validation numbers, save the slot's own steps
    summarized = [e for e in result.events if e["type"] == "TaskStateExited"
                  and e["stateExitedEventDetails"]["name"] == "SummarizeFleet"]
    output = summarized[0]["stateExitedEventDetails"]["output"]
    assert "throughput_per_s" not in output and "max_rel_error" not in output and "capacity_rps" not in output
