"""AwaitAgent: the instance's SSM agent must be Online before a command can reach it
(SendCommand to an unregistered instance fails with InvalidInstanceId). Not Online yet:
AgentNotReady, which the ASL retries until the registration deadline, then terminates."""

from __future__ import annotations

from eiplane.aws import aws_errors, client, record_api_calls
from eiplane.errors import AgentNotReady
from eiplane.models.launch import AwaitAgentInput
from eiplane.provisioning.lifecycle import record_state


def agent_status(region: str, instance_id: str) -> str | None:
    information = client("ssm", region).describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])["InstanceInformationList"]
    return str(information[0]["PingStatus"]) if information else None


def await_agent(request: AwaitAgentInput) -> list[str]:
    instance_id = request.instance.instance_id
    with record_api_calls() as calls, aws_errors():
        status = agent_status(request.spec.region, instance_id)
        if status != "Online":
            raise AgentNotReady(f"{instance_id}: SSM agent {'not registered' if status is None else status} yet")
        record_state(request.spec, request.slot.index, instance_id, "registered")
    return calls.mutating
