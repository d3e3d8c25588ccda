"""Demand-following capacity: the scaling policy, its simulator and the capacity benchmark.

- `policy`: the pure decision (`plan(observation, settings) -> Decision`); stdlib + pydantic
  only, because it runs in the scaling Lambda, whose layer ships pydantic and powertools.
- `simulate`: replays a per-minute demand trace through a policy with launch-to-ready time,
  schedule interval, alarm fast path, draining and per-second billing; the exact oracle; the
  target-tracking and HPA-like baselines.
- `traces`: the three development traces the policy was developed on, generated from fixed seeds.
- `benchmark`: the suite on those (three traces x three policies), its table and cost-versus-violation curves.
- `families`: the evaluation's parameterised trace families, split once by seed into dev and test sets.
- `evaluation`: `eiplane bench capacity`: eiplane on a set against the oracle and, at equal violation,
  the tuned baselines, one table per family.

Only `policy` is imported here: the Lambda must not pay for the simulator.
"""

from eiplane.capacity.policy import Decision, Forecast, Observation, PolicySettings, ReasonCode, Slot, SlotState, plan

__all__ = ["Decision", "Forecast", "Observation", "PolicySettings", "ReasonCode", "Slot", "SlotState", "plan"]
