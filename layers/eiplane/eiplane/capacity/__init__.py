"""Demand-following capacity: the scaling policy, its simulator and the capacity benchmark.

- `policy`: the pure decision (`plan(observation, settings) -> Decision`); stdlib + pydantic
  only, because it runs in the scaling Lambda, whose layer ships pydantic and powertools.
- `simulate`: replays a per-minute demand trace through a policy with launch-to-ready time,
  schedule interval, alarm fast path, draining and per-second billing; the exact oracle; the
  target-tracking and HPA-like baselines.
- `traces`: the benchmark's traces, generated from fixed seeds.
- `benchmark`: the suite (three traces x three policies), its table and cost-versus-violation curves.

Only `policy` is imported here: the Lambda must not pay for the simulator.
"""

from eiplane.capacity.policy import Decision, Forecast, Observation, PolicySettings, ReasonCode, Slot, SlotState, plan

__all__ = ["Decision", "Forecast", "Observation", "PolicySettings", "ReasonCode", "Slot", "SlotState", "plan"]
