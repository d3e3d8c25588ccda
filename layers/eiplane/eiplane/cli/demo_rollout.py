"""The demo's rollout: the gpu fleet, serving tiny-cnn 1 after capacity matching, is rolled to
tiny-cnn 2 (packed now) by RolloutFleet while requests flow through its endpoint; the report says
which version served before and after and how many requests failed (none may)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eiplane.artifacts.push import push
from eiplane.cli.commands import LOCAL_POLL_S
from eiplane.cli.demo_capacity import demo_request, endpoint_url, registration
from eiplane.cli.progress import follow
from eiplane.cli.traffic import steady_traffic
from eiplane.local.engine import EmbeddedAws
from eiplane.naming import model_prefix

# Each batch serves this long (virtual: the Waits of the embedded AWS) while the guardrails are checked.
DEMO_BAKE_SECONDS = 60


def run_rollout_demo(aws: EmbeddedAws, fleet: str, pack_version: Callable[[Path, str], Any], out_dir: Path,
                     version: str = "2") -> dict[str, Any]:
    spec = registration(aws, fleet)["spec"]
    before = f"{spec['model']['name']}:{spec['model']['version']}"
    artifact_dir = out_dir / "artifacts" / f"{spec['model']['name']}-{version}"
    pack_version(artifact_dir, version)
    push(aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"],
         model_prefix(fleet, spec["model"]["name"], version), artifact_dir)
    new_spec = {**spec, "model": {**spec["model"], "version": version},
                "rollout": {**spec.get("rollout", {}), "bake_seconds": DEMO_BAKE_SECONDS}}
    url = endpoint_url(aws, fleet)
    print(f"\n== rollout: {fleet} from {before} to {spec['model']['name']}:{version}, under traffic through {url}")
    sfn = aws.client("stepfunctions")
    # What the balancer served reaches CloudWatch as the bake's Waits let time pass (the guardrails read it).
    aws.load_balancers.publish_as_clock_moves = lambda: datetime.now(UTC)
    try:
        with steady_traffic(url, demo_request(aws, fleet), per_second=20) as traffic:
            print(" ", end="")
            result = follow(sfn, sfn.start_execution(
                stateMachineArn=aws.state_machine_arn("RolloutFleetStateMachine"), name=f"demo-rollout-{fleet}",
                input=json.dumps(new_spec))["executionArn"], compact=True, poll_s=LOCAL_POLL_S)
    finally:
        aws.load_balancers.publish_as_clock_moves = None
    report = result.output if result.status == "SUCCEEDED" else {"reason": result.error_message()}
    failed = sum(not o.ok for o in traffic.outcomes)
    print(f"  {result.status}: {report.get('reason')}; {len(traffic.outcomes)} requests, {failed} failed")
    return {"execution_arn": result.arn, "status": result.status, "error": result.error,
            "version_before": before, "version_after": report.get("serving", before),
            "batches": report.get("batches"), "replaced": report.get("replaced"),
            "requests": len(traffic.outcomes), "requests_failed": failed, "states": result.states_entered()}
