"""events/ holds the inputs `sam local invoke -e` and `eiplane local invoke -e` use. Each one
is parsed by the model of the state it feeds, so a stale sample fails here."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from eiplane.errors import InvalidFleetSpec
from eiplane.models import deletion, launch, matching
from eiplane.models import prerequisites as models
from eiplane.models.spec import FleetSpec, parse_fleet_spec
from tests.conftest import EVENTS, load_event

STATE_EVENTS: dict[str, type[BaseModel]] = {
    "validate_fleet_spec.json": models.ValidateFleetSpecInput,
    "plan_prerequisites.json": models.FleetStepInput,
    "ensure_network.json": models.FleetStepInput,
    "ensure_instance_role.json": models.FleetStepInput,
    "ensure_vpc_endpoints.json": models.EnsureVpcEndpointsInput,
    "await_vpc_endpoints.json": models.AwaitVpcEndpointsInput,
    "ensure_load_balancer.json": models.EnsureLoadBalancerInput,
    "await_load_balancer.json": models.AwaitLoadBalancerInput,
    "record_prerequisites.json": models.RecordPrerequisitesInput,
    "plan_launch.json": launch.PlanLaunchInput,
    "launch_instance.json": launch.SlotInput,
    "await_agent.json": launch.AwaitAgentInput,
    "send_validation.json": launch.SendValidationInput,
    "await_validation.json": launch.AwaitValidationInput,
    "put_in_service.json": launch.PutInServiceInput,
    "terminate_slot.json": launch.TerminateSlotInput,
    "summarize_fleet.json": launch.SummarizeFleetInput,
    "put_in_warm_pool.json": launch.PutInServiceInput,
    "list_fleets.json": matching.TickRequest,
    "acquire_lease.json": matching.FleetTick,
    "observe_and_plan.json": matching.FleetTick,
    "scale_out.json": matching.PlanInput,
    "drain_slots.json": matching.PlanInput,
    "replace_unhealthy.json": matching.PlanInput,
    "terminate_drained.json": matching.TerminateDrainedInput,
    "record_decision.json": matching.RecordInput,
    "release_lease.json": matching.ReleaseInput,
    "summarize_tick.json": matching.SummarizeTickInput,
    "begin_deletion.json": deletion.BeginDeletionInput,
    "plan_deletion.json": deletion.DeletionStepInput,  # every DeleteFleet step but the first and the paged ones
    "delete_fleet_state.json": deletion.LoopInput,
}
INVOKE_REQUEST = "invoke_tiny_cnn.json"  # a request body for the model server, not a state's input
GOOD_SPECS = ["provision_fleet_eia.json", "provision_fleet_gpu.json", "provision_fleet_inferentia.json"]
# MatchCapacity's inputs as EventBridge delivers them: the schedule's and a surge alarm's.
TICK_EVENTS = {"match_capacity_schedule.json": "schedule", "match_capacity_alarm.json": "alarm"}
DELETE_REQUEST = "delete_fleet.json"  # DeleteFleet's execution input (a dry run)


def test_every_event_file_is_accounted_for() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == {*STATE_EVENTS, *GOOD_SPECS, *TICK_EVENTS,
                                                      "provision_fleet_invalid.json", INVOKE_REQUEST, DELETE_REQUEST}


def test_the_delete_request_is_one() -> None:
    assert deletion.parse_delete_request(load_event(DELETE_REQUEST)).dry_run is True


def test_the_invoke_request_is_one_input_of_the_demo_models_shape() -> None:
    # `eiplane invoke demo-gpu --input events/invoke_tiny_cnn.json` (README): {"inputs": [one 3x32x32 image]}
    inputs = load_event(INVOKE_REQUEST)["inputs"]
    assert (len(inputs), len(inputs[0]), len(inputs[0][0]), len(inputs[0][0][0])) == (1, 3, 32, 32)


@pytest.mark.parametrize(("name", "trigger"), TICK_EVENTS.items())
def test_match_capacity_events_are_what_eventbridge_sends(name: str, trigger: str) -> None:
    event = matching.TickEvent.model_validate(load_event(name))
    assert event.trigger == trigger and event.time is not None
    if trigger == "alarm":
        assert event.alarm_name is not None and event.alarm_name.startswith("eiplane-local-surge-")


@pytest.mark.parametrize("name", GOOD_SPECS)
def test_fleet_spec_events_are_valid_specs(name: str) -> None:
    assert isinstance(parse_fleet_spec(load_event(name)), FleetSpec)


def test_the_three_backends_each_have_an_event() -> None:
    assert [parse_fleet_spec(load_event(n)).backend.type for n in GOOD_SPECS] == ["eia", "gpu", "inferentia"]


def test_invalid_spec_event_is_invalid_in_five_ways() -> None:
    with pytest.raises(InvalidFleetSpec) as raised:
        parse_fleet_spec(load_event("provision_fleet_invalid.json"))
    assert len(raised.value.problems) == 5


@pytest.mark.parametrize(("name", "model"), STATE_EVENTS.items())
def test_state_events_parse_with_their_state_model(name: str, model: type[BaseModel]) -> None:
    event = load_event(name)
    model.model_validate(event)
    assert event["context"]["execution_id"].startswith("arn:aws:states:")
