"""The control plane's cost: Step Functions state transitions per provisioned instance, and the
largest state an execution passes on (Step Functions' limit is 256 KB a state).

Standard workflows bill each state transition ($0.025 per 1,000), retries included. This
runs ProvisionFleet on the embedded AWS for fleets of several sizes, counts the transitions
in each execution history, and takes the increase per instance. Retries of the two waits
(AwaitAgent, AwaitValidation) depend on how long the agent takes to register and how long
validation runs, so the same ASL retry schedules are also applied to the timings a real
instance shows (a model, labelled as such in the output).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from eiplane.executions import ExecutionResult

PRICE_PER_TRANSITION = 0.025 / 1000


def transitions(result: ExecutionResult) -> dict[str, int]:
    """States entered, plus one per retried Lambda attempt (each attempt is a transition)."""
    entered = sum(1 for e in result.events if e["type"].endswith("StateEntered"))
    scheduled = sum(1 for e in result.events if e["type"] == "LambdaFunctionScheduled")
    tasks = sum(1 for e in result.events if e["type"] == "TaskStateEntered")
    return {"states_entered": entered, "retries": scheduled - tasks, "transitions": entered + scheduled - tasks}


def attempts_until(seconds: float, interval: float, backoff: float, max_delay: float, max_attempts: int) -> int:
    """How many times a Retry-driven poll runs before `seconds` have passed (or it gives up)."""
    waited, delay, attempts = 0.0, interval, 1
    while waited < seconds and attempts <= max_attempts:
        waited += delay
        delay = min(delay * backoff, max_delay)
        attempts += 1
    return attempts


def _retry(definition: dict[str, Any], state: str, error: str) -> dict[str, Any]:
    slot_states = definition["States"]["ProvisionSlots"]["ItemProcessor"]["States"]
    return next(r for r in slot_states[state]["Retry"] if error in r["ErrorEquals"])


def modelled_per_instance(definition: dict[str, Any], registration_s: float, validation_s: float) -> int:
    """Transitions of one slot on AWS: five states, plus the polls the two waits take."""
    agent = _retry(definition, "AwaitAgent", "AgentNotReady")
    check = _retry(definition, "AwaitValidation", "ValidationInProgress")
    polls = (attempts_until(registration_s, agent["IntervalSeconds"], agent["BackoffRate"], agent["MaxDelaySeconds"],
                            agent["MaxAttempts"])
             + attempts_until(validation_s, check["IntervalSeconds"], check["BackoffRate"], check["MaxDelaySeconds"],
                              check["MaxAttempts"]))
    return 5 + polls - 2  # the first poll of each wait is its state's own transition


DEFAULT_SIZES = (0, 1, 4, 25, 100)


def measure(sizes: tuple[int, ...] = DEFAULT_SIZES) -> dict[str, Any]:
    """ProvisionFleet on a fresh embedded AWS per size: transitions, and the largest payload any
    state passed on (what must stay under Step Functions' 256 KB). The artifact is validated in 2
    formats x 3 precisions x 3 batch sizes, the most numbers a slot's outcome carries."""
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack
    from eiplane.artifacts.push import push
    from eiplane.executions import largest_state
    from eiplane.local.engine import EmbeddedAws, find_project_root
    from eiplane.naming import model_prefix

    root = find_project_root()
    definition = yaml.safe_load((root / "statemachines" / "provision_fleet.asl.yaml").read_text())
    spec = json.loads((root / "events" / "provision_fleet_gpu.json").read_text())
    spec["model"] = {"name": "tiny-cnn", "version": "1", "precisions": ["fp32", "fp16", "bf16"]}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        artifact = Path(scratch) / "tiny-cnn-1"
        pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version="1", out_dir=artifact, batch_sizes=(1, 4, 8))
        for size in sizes:
            with EmbeddedAws(root) as aws:  # a fresh account each time: every slot is launched
                push(aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"],
                     model_prefix(spec["name"], "tiny-cnn", "1"), artifact)
                wanted = {**spec, "capacity": {"min": 0, "desired": size, "max": max(size, 1)}}
                result = aws.run(wanted, name=f"cost-{size}")
                if result.status != "SUCCEEDED":
                    raise RuntimeError(f"fleet of {size}: {result.error}: {result.error_message()}")
                rerun = aws.run(wanted, name=f"cost-{size}-again")
            largest, where = largest_state(result.events)
            rows.append({"instances": size, **transitions(result), "rerun_transitions": transitions(rerun)["transitions"],
                         "largest_state_bytes": largest, "largest_state": where, "history_events": len(result.events)})
    base = int(rows[0]["transitions"])
    per_instance = [(int(r["transitions"]) - base) / int(r["instances"]) for r in rows if r["instances"]]
    modelled = {f"register {r:.0f} s, validate {v:.0f} s": modelled_per_instance(definition, r, v)
                for r, v in ((60, 60), (120, 120), (180, 300))}
    return {
        "embedded": rows,
        "per_instance_embedded": per_instance,
        "fleet_overhead_transitions": base,
        "per_instance_modelled_on_aws": modelled,
        "price_per_transition_usd": PRICE_PER_TRANSITION,
    }


def render(measured: dict[str, Any]) -> str:
    lines = ["| instances | transitions | of which retries | re-run (nothing to do) | largest state | history events |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['instances']} | {r['transitions']} | {r['retries']} | {r['rerun_transitions']} | "
              f"{r['largest_state_bytes']:,} B ({r['largest_state']}) | {r['history_events']} |"
              for r in measured["embedded"]]
    per = measured["per_instance_embedded"]
    lines += ["", f"Per instance on the embedded AWS: {', '.join(f'{p:.1f}' for p in per)} transitions "
              f"(fleet overhead {measured['fleet_overhead_transitions']})."]
    lines += ["", "| on AWS (model) | transitions per instance | cost per instance |", "| --- | --- | --- |"]
    lines += [f"| {timing} | {n} | ${n * PRICE_PER_TRANSITION:.6f} |"
              for timing, n in measured["per_instance_modelled_on_aws"].items()]
    return "\n".join(lines)
