"""IAM on AWS's terms. The embedded AWS authorises every call a function, a state machine, an
EventBridge rule or a fleet instance makes, against the policies of the role it runs as
(eiplane.local.iam); the flows of every other test run under it. Here:

- every action the template grants a function, state machine or rule, and every action of the
  fleet instance role and of its permissions boundary, is needed: removing any one of them denies
  a call that the flows below make (replayed against the recorded requests with the same evaluator
  that decided them), so that call's test would fail with an access-denied error;
- a removed action fails a real run with the service's own error, and the same run passes with the
  enforcement off (the canary);
- denials carry each service's error code, explicit denies and permissions boundaries count, and
  an operation the embedded AWS cannot authorise fails loudly instead of passing.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eiplane.artifacts.push import push
from eiplane.local.engine import EmbeddedAws, function_credentials
from eiplane.local.iam.enforcer import Record
from eiplane.local.lambda_runtime import clear_handler_hooks
from eiplane.models.launch import IN_PROGRESS
from tests.conftest import load_event
from tests.integration.conftest import (
    Faults,
    _in_function,
    artifact_as_version,
    break_the_balancer,
    kill_server,
    private_vpc,
    publish_a_minute,
    spec_for,
)
from tests.integration.test_capacity_matching import (
    START,
    fleet_capacity,
    hold_lease,
    outcome,
    put_demand,
    tick,
)
from tests.integration.test_launch import slot_records

AWS_MANAGED = "arn:aws:iam::aws:policy/"  # Lambda's basic execution role: Lambda's own logging, not ours


FINISHED = "arn:aws:states:us-east-1:123456789012:execution:eiplane-local-ProvisionFleet:long-gone"


def invoke(aws: EmbeddedAws, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """A function invoked directly (it runs as its own role), on a state crafted to reach one branch."""
    response = aws.client("lambda").invoke(FunctionName=aws.stack.functions[logical_id], Payload=json.dumps(event))
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return dict(payload)


def set_slot(aws: EmbeddedAws, fleet: str, index: int, **fields: str) -> None:
    names = {f"#f{i}": k for i, k in enumerate(fields)}
    aws.client("dynamodb").update_item(
        TableName=aws.stack.outputs["FleetStateTableName"], Key={"pk": {"S": f"FLEET#{fleet}"}, "sk": {"S": f"SLOT#{index:04d}"}},
        UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))), ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":v{i}": {"S": v} for i, v in enumerate(fields.values())})


def tick_event(fleet: str, plan: dict[str, Any], **extra: Any) -> dict[str, Any]:
    tick = {"at": "2026-11-27T14:00:00Z", "trigger": "manual", "id": "coverage", "execution_id": FINISHED}
    return {"fleet": fleet, "tick": tick, "context": {"execution_id": FINISHED}, "plan": {
        "action": "scale_in", "code": "scale_in", "reason": "coverage", "desired": 1, "desired_before": 2, "ready": 2,
        "launching": 0, **plan}, **extra}


def _exercise_everything(aws: EmbeddedAws, faults: Faults, artifact: Path, tmp_path: Path) -> None:
    iam, ec2 = aws.client("iam"), aws.client("ec2")
    bucket = aws.stack.outputs["ArtifactsBucketName"]
    # Prerequisites and their repairs: a profile holding another role, an endpoint of eiplane's missing its
    # subnets and private DNS; then broader policies, a widened trust policy, removed tags, no permissions
    # boundary, a world-open rule on the instance group.
    iam.create_role(RoleName="other", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="eiplane-demo-eia-instance", Path="/eiplane/")
    iam.add_role_to_instance_profile(InstanceProfileName="eiplane-demo-eia-instance", RoleName="other")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc, SubnetIds=[subnets[0]["SubnetId"]],
                            PrivateDnsEnabled=False, ServiceName="com.amazonaws.us-east-1.elastic-inference.runtime",
                            TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": [
                                {"Key": "eiplane:managed-by", "Value": "eiplane"}]}])
    assert aws.run(spec_for("eia"), name="eia-1").status == "SUCCEEDED"
    role = "eiplane-demo-eia-instance"
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_role_policy(RoleName=role, PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    iam.untag_role(RoleName=role, TagKeys=["team"])
    iam.untag_instance_profile(InstanceProfileName=role, TagKeys=["team"])
    # ...and a load balancer, target group and listener that drifted: a tag gone, another health check, a
    # listener forwarding elsewhere and one more on another port, another security group, fewer subnets.
    break_the_balancer(aws, "demo-eia")
    iam.delete_role_permissions_boundary(RoleName=role)
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["eiplane-demo-eia-instances"]}])[
        "SecurityGroups"][0]["GroupId"]
    ec2.delete_tags(Resources=[group], Tags=[{"Key": "team"}])
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    # ...and one eia instance, validated after connecting to its accelerator
    push(aws.client("s3"), bucket, "fleets/demo-eia/models/tiny-cnn/1/", artifact)
    eia = spec_for("eia", desired=1)
    eia["model"] = {"name": "tiny-cnn", "version": "1"}
    default_group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                          {"Name": "group-name", "Values": ["default"]}])
    eia["serving"] = {"allowed_security_groups": [default_group["SecurityGroups"][0]["GroupId"]]}
    assert aws.run(eia, name="eia-2").status == "SUCCEEDED"
    # A second eia fleet in two subnets of the VPC (its load balancer needs two zones): the shared EI
    # endpoint spans subnets it does not use.
    one = spec_for("eia", name="demo-eia-b", network={"subnet_ids": [subnets[1]["SubnetId"], subnets[2]["SubnetId"]]})
    assert aws.run(one, name="eia-b-1").status == "SUCCEEDED"
    # Private subnets: SSM and S3 endpoints, VPC DNS.
    assert aws.run(spec_for("inferentia", network=private_vpc(aws)), name="inf2-1").status == "SUCCEEDED"

    # A gpu fleet: one instance in service, one validated and stopped into the warm pool.
    push(aws.client("s3"), bucket, "fleets/demo-gpu/models/tiny-cnn/1/", artifact)
    gpu = spec_for("gpu", desired=1)
    gpu["model"] = {"name": "tiny-cnn", "version": "1"}
    gpu["capacity"] = {"min": 0, "desired": 1, "max": 2}
    gpu["scaling"] = {"warm_pool_size": 1}
    assert aws.run(gpu, name="gpu-1").status == "SUCCEEDED"
    # The instance's model server publishes its minute (PutMetricData, as the instance's role).
    in_service_now = [str(r["instance_id"]) for r in slot_records(aws, "demo-gpu").values() if r["state"] == "in_service"]
    publish_a_minute(aws, in_service_now)
    # Capacity matching: the schedule (as its EventBridge rule) holds, the surge alarm (as its rule) starts a
    # tick that scales out through ProvisionFleet (starting the pooled instance), a quiet hour scales in
    # (stopping one back into the pool); a tick finding another's lease skips the fleet.
    capacity = fleet_capacity(aws)
    put_demand(aws, START, [0.5 * capacity] * 60)
    (scheduled,) = aws.schedule_tick(START + timedelta(minutes=60))
    assert outcome(aws.wait(scheduled))["action"] == "hold"
    put_demand(aws, START + timedelta(minutes=60), [2.4 * capacity] * 3)
    (alarmed,) = aws.evaluate_alarms(START + timedelta(minutes=63))
    surge = outcome(aws.wait(alarmed))
    assert surge["action"] == "scale_out" and aws.wait(surge["execution_arn"]).status == "SUCCEEDED"
    capacity = fleet_capacity(aws)  # the resumed slot's measurement counts too (it varies with the machine's load)
    put_demand(aws, START + timedelta(minutes=63), [0.3 * capacity] * 40)
    assert outcome(tick(aws, START + timedelta(minutes=103), "tick-quiet"))["action"] == "scale_in"
    hold_lease(aws, "arn:aws:states:us-east-1:123456789012:execution:eiplane-local-MatchCapacity:other")
    assert outcome(tick(aws, START + timedelta(minutes=104), "tick-held"))["code"] == "lease_held"
    aws.client("dynamodb").delete_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                       Key={"pk": {"S": "FLEET#demo-gpu"}, "sk": {"S": "LEASE"}})

    # A pooled instance that cannot start (no capacity in its zone) is terminated.
    faults.fail("ec2", "StartInstances", "InsufficientInstanceCapacity", times=1)
    assert aws.run({**gpu, "capacity": {"min": 0, "desired": 2, "max": 2}}, name="gpu-2").error == "FleetIncomplete"
    # Scale-in's own branches, on slots set up for them: an in-service slot drains, then is terminated (no
    # warm pool any more); a slot on its way that no running execution drives is cancelled.
    nopool = {**gpu, "scaling": {"warm_pool_size": 0}}
    assert aws.run(nopool, name="gpu-3").status == "SUCCEEDED"
    serving = next(i for i, r in slot_records(aws, "demo-gpu").items() if r["state"] == "in_service")
    drained = invoke(aws, "DrainSlotsFunction", tick_event("demo-gpu", {"terminate": [serving]}))
    assert drained["draining"] == [serving]
    # nothing is terminated while the balancer still drains it (requests may be in flight)
    early = aws.client("lambda").invoke(FunctionName=aws.stack.functions["TerminateDrainedFunction"], Payload=json.dumps(
        tick_event("demo-gpu", {"terminate": [serving]}, drain=drained)))
    assert json.loads(early["Payload"].read())["errorType"] == "TargetsStillDraining"
    aws.clock.advance(drained["drain_seconds"])  # the Wait state's: the deregistration delay passes
    done = invoke(aws, "TerminateDrainedFunction", tick_event("demo-gpu", {"terminate": [serving]}, drain=drained))
    assert done["terminated"] == [serving]
    assert aws.run(nopool, name="gpu-4").status == "SUCCEEDED"
    serving = next(i for i, r in slot_records(aws, "demo-gpu").items() if r["state"] == "in_service")
    set_slot(aws, "demo-gpu", serving, state="artifact_verified", execution=FINISHED)
    assert invoke(aws, "DrainSlotsFunction", tick_event("demo-gpu", {"terminate": [serving]}))["cancelled"] == [serving]

    # Failures: no capacity anywhere (no instance to compensate); a compensation whose termination fails,
    # cleaned up by the next run, which also meets a slot planned by an execution long gone; an agent whose
    # digest no longer matches (no result to read).
    faults.fail("ec2", "RunInstances", "InsufficientInstanceCapacity", times=None)
    assert aws.run(nopool, name="gpu-5").error == "FleetIncomplete"
    clear_handler_hooks()
    faults.rewrite("ssm", "DescribeInstanceInformation", lambda parsed: parsed.update(InstanceInformationList=[]))
    faults.fail("ec2", "TerminateInstances", "InternalError", times=None)
    assert aws.run(nopool, name="gpu-6").status == "FAILED"
    clear_handler_hooks()
    set_slot(aws, "demo-gpu", 7, state="planned", execution=FINISHED, generation="0")
    assert aws.run(nopool, name="gpu-7").status == "SUCCEEDED"
    # A server that dies for good is found unhealthy by the balancer and replaced by the next tick.
    serving = next(i for i, r in slot_records(aws, "demo-gpu").items() if r["state"] == "in_service")
    kill_server(aws, str(slot_records(aws, "demo-gpu")[serving]["instance_id"]))
    aws.clock.advance(120)  # the balancer's health checks run and fail
    replaced = outcome(tick(aws, START + timedelta(minutes=200), "tick-replace"))
    assert replaced["action"] == "replace" and aws.wait(replaced["execution_arn"]).status == "SUCCEEDED"
    # A rollout to version 2 (its bake reads the balancer's metrics and the alarm the spec names), then one to
    # version 3 rolled back while its batch still runs: the batch is stopped, its instance on its way terminated.
    for version in ("2", "3"):
        push(aws.client("s3"), bucket, f"fleets/demo-gpu/models/tiny-cnn/{version}/",
             artifact_as_version(artifact, tmp_path, version))
    rollout = {**nopool, "model": {"name": "tiny-cnn", "version": "2"},
               "rollout": {"bake_seconds": 30, "alarms": ["eiplane-test-guardrail"]}}
    missing = aws.run({**rollout, "model": {"name": "tiny-cnn", "version": "9"}}, name="rollout-9",
                      logical_id="RolloutFleetStateMachine")
    assert missing.error == "ArtifactNotFound"  # (a 404, not a 403: the bucket may be listed)
    assert aws.run(rollout, name="rollout-2", logical_id="RolloutFleetStateMachine").status == "SUCCEEDED"

    def batch_instance_on_its_way(_: dict[str, Any]) -> bool:
        # (from the moment the batch's launch has recorded its instance until it is in service)
        return _in_function("AwaitRolloutBatchFunction") and any(
            r["state"] in IN_PROGRESS and r.get("instance_id") and "-rollout-" in str(r.get("execution"))
            for r in slot_records(aws, "demo-gpu").values())

    faults.fail("stepfunctions", "DescribeExecution", "AccessDeniedException", when=batch_instance_on_its_way)
    rolled_back = aws.run({**rollout, "model": {"name": "tiny-cnn", "version": "3"}}, name="rollout-3",
                          logical_id="RolloutFleetStateMachine")
    assert rolled_back.error == "RolledBack" and "AwsAccessDenied" in str(rolled_back.cause)
    clear_handler_hooks()
    agent = next(o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="fleets/demo-gpu/agent/")[
        "Contents"])
    aws.client("s3").put_object(Bucket=bucket, Key=agent, Body=b"print('not the agent')\n")
    assert aws.run({**rollout, "capacity": {"min": 0, "desired": 2, "max": 2}}, name="gpu-8").error == "FleetIncomplete"
    # A summary that meets a slot another execution had on its way, now finished.
    set_slot(aws, "demo-eia", 0, state="registered", execution=FINISHED)
    summary = load_event("summarize_fleet.json")  # demo-eia's
    summary["launch"].update(in_flight=[0], slots=[], already_in_service=[])
    assert invoke(aws, "SummarizeFleetFunction", summary)["in_service"] == 0

    # Deletion: a plan first (with purge: what a purge would delete); then demo-gpu, whose lease a tick that has
    # ended still holds and whose role someone gave a managed policy, its artifacts purged; then both eia fleets
    # (their shared endpoint and its group go with the second) and the inferentia fleet's private endpoints.
    def delete(fleet: str, name: str, **options: Any) -> str:
        return aws.run({"fleet": fleet, **options}, name=name, logical_id="DeleteFleetStateMachine").status

    assert delete("demo-gpu", "delete-plan", dry_run=True, purge_artifacts=True) == "SUCCEEDED"
    hold_lease(aws, "arn:aws:states:us-east-1:123456789012:execution:eiplane-local-MatchCapacity:ended")
    iam.attach_role_policy(RoleName="eiplane-demo-gpu-instance", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    assert delete("demo-gpu", "delete-gpu", purge_artifacts=True) == "SUCCEEDED"
    for fleet in ("demo-eia", "demo-eia-b", spec_for("inferentia")["name"]):
        assert delete(fleet, f"delete-{fleet}") == "SUCCEEDED"


def _actions(statement: dict[str, Any]) -> list[str]:
    listed = statement.get("Action", [])
    return [listed] if isinstance(listed, str) else list(listed)


def _without(document: dict[str, Any], index: int, action: str) -> dict[str, Any]:
    mutated = copy.deepcopy(document)
    statements = mutated["Statement"] if isinstance(mutated["Statement"], list) else [mutated["Statement"]]
    remaining = [a for a in _actions(statements[index]) if a != action]
    if remaining:
        statements[index]["Action"] = remaining
    else:
        del statements[index]
    mutated["Statement"] = statements
    return mutated


def unneeded_actions(aws: EmbeddedAws) -> list[str]:
    """Every (role or boundary, statement, action) whose removal denies none of the requests made by the
    principals it applies to."""
    enforcer = aws.iam
    assert enforcer is not None
    by_role: dict[str, list[Record]] = {}
    for record in enforcer.records:
        if record.allowed and record.principal.role_name:
            by_role.setdefault(record.principal.role_name, []).append(record)
    roles = sorted({*aws.roles.values(), *(r for r in by_role if r.startswith("eiplane-"))})
    policies = {role: enforcer.policies(role) for role in roles}

    def denies_something(role: str, identity: list[dict[str, Any]], boundary: Any, action: str) -> bool:
        # Taking `action` out of an Allow can deny only the requests for an action it names (a pattern such
        # as ec2:Describe* names several): the others are decided as before, so only those are replayed.
        return any(not enforcer.evaluate(r.principal, r.request, r.request.context, identity, boundary,
                                         r.resource_policy).allowed for r in by_role.get(role, [])
                   if fnmatch.fnmatchcase(r.request.action.lower(), action.lower()))

    unneeded = []
    for role in roles:
        identity, boundary = policies[role]
        for position, policy in enumerate(identity):
            if policy["name"].startswith(AWS_MANAGED):
                continue
            statements = policy["policy"]["Statement"]
            for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
                for action in _actions(statement) if statement.get("Effect") == "Allow" else []:
                    mutated = [*identity[:position], {**policy, "policy": _without(policy["policy"], index, action)},
                               *identity[position + 1:]]
                    if not denies_something(role, mutated, boundary, action):
                        unneeded.append(f"{role} {policy['name']} {statement.get('Sid', index)}: {action}")
    # A permissions boundary is shared by every fleet's role: each of its actions must be needed by one of them.
    bounded: dict[str, list[str]] = {}
    for role in roles:
        if policies[role][1]:
            bounded.setdefault(policies[role][1][0]["name"], []).append(role)  # type: ignore[index]
    for arn, users in sorted(bounded.items()):
        boundary = policies[users[0]][1]
        assert boundary is not None
        for index, statement in enumerate(boundary[0]["policy"]["Statement"]):
            for action in _actions(statement):
                mutated_boundary = [{**boundary[0], "policy": _without(boundary[0]["policy"], index, action)}]
                if not any(denies_something(role, policies[role][0], mutated_boundary, action) for role in users):
                    unneeded.append(f"permissions boundary {arn} {statement.get('Sid', index)}: {action}")
    return unneeded


def test_every_granted_action_is_needed_by_a_call_the_flows_make(aws: EmbeddedAws, faults: Faults,
                                                                  torchscript_artifact: Path, tmp_path: Path) -> None:
    _exercise_everything(aws, faults, torchscript_artifact, tmp_path)
    assert aws.iam is not None
    kinds = {r.principal.kind for r in aws.iam.records}
    assert kinds == {"function", "state-machine", "rule", "instance"}
    unneeded = unneeded_actions(aws)
    assert unneeded == [], "\n".join(unneeded)
    # every function that has a policy of its own made authorised calls
    ran = {r.principal.name for r in aws.iam.records if r.principal.kind == "function"}
    with_policies = {f"{aws.stack_name}-{name}" for name in aws.stack.functions
                     if name not in ("SummarizeTickFunction",)}  # SummarizeTick calls no AWS service
    assert with_policies <= ran


def _remove_action(aws: EmbeddedAws, role: str, action: str) -> None:
    iam = aws.client("iam")
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for index, statement in enumerate(document["Statement"]):
            if action in _actions(statement):
                iam.put_role_policy(RoleName=role, PolicyName=name,
                                    PolicyDocument=json.dumps(_without(document, index, action)))
                return
    raise AssertionError(f"{role} has no {action}")


def test_a_removed_action_fails_the_run_with_the_service_error(aws: EmbeddedAws) -> None:
    _remove_action(aws, aws.roles["EnsureNetworkFunctionRole"], "ec2:CreateSecurityGroup")
    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "AwsAccessDenied")
    message = result.error_message() or ""
    assert "CreateSecurityGroup denied (UnauthorizedOperation): You are not authorized to perform this operation. " \
           "User: arn:aws:sts::123456789012:assumed-role/eiplane-local-EnsureNetworkFunctionRole/" \
           "eiplane-local-EnsureNetworkFunction is not authorized to perform: ec2:CreateSecurityGroup on resource: " \
           "arn:aws:ec2:us-east-1:123456789012:security-group/* because no identity-based policy allows the " \
           "ec2:CreateSecurityGroup action" in message


def test_canary_with_the_enforcement_off_the_same_run_passes(aws: EmbeddedAws) -> None:
    assert aws.iam is not None
    _remove_action(aws, aws.roles["EnsureNetworkFunctionRole"], "ec2:CreateSecurityGroup")
    aws.iam.enabled = False
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"


def _as_function(aws: EmbeddedAws, service: str, logical_id: str = "SummarizeTickFunction") -> Any:
    """A client signed as a function of the stack (SummarizeTick's role allows nothing of its own)."""
    return aws.client(service, access_key=function_credentials(aws.stack.functions[logical_id])["AWS_ACCESS_KEY_ID"])


@pytest.mark.parametrize(("service", "call", "code", "status"), [
    ("ec2", lambda c: c.describe_vpcs(), "UnauthorizedOperation", 403),
    ("iam", lambda c: c.get_role(RoleName="x"), "AccessDenied", 403),
    ("s3", lambda c: c.get_object(Bucket="eiplane-local-artifactsbucket-123456789012", Key="k"), "AccessDenied", 403),
    ("dynamodb", lambda c: c.get_item(TableName="eiplane-local-FleetStateTable", Key={"pk": {"S": "x"}, "sk": {"S": "y"}}),
     "AccessDeniedException", 400),
    ("ssm", lambda c: c.get_parameter(Name="/eiplane/x"), "AccessDeniedException", 400),
    ("stepfunctions", lambda c: c.start_execution(
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:eiplane-local-ProvisionFleet"),
     "AccessDeniedException", 400),
    ("cloudwatch", lambda c: c.put_metric_data(Namespace="x", MetricData=[{"MetricName": "m", "Value": 1}]),
     "AccessDenied", 403),
    ("lambda", lambda c: c.invoke(FunctionName="eiplane-local-ListFleetsFunction"), "AccessDeniedException", 403),
])
def test_a_denied_call_gets_that_service_s_error(aws: EmbeddedAws, service: str, call: Any, code: str,
                                                 status: int) -> None:
    with pytest.raises(ClientError) as denied:
        call(_as_function(aws, service))
    error = denied.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert "is not authorized to perform" in error["Error"]["Message"]
    assert "assumed-role/eiplane-local-SummarizeTickFunctionRole/eiplane-local-SummarizeTickFunction" in \
        error["Error"]["Message"]


def test_an_explicit_deny_wins_over_an_allow(aws: EmbeddedAws) -> None:
    role = aws.roles["SummarizeTickFunctionRole"]
    iam = aws.client("iam")
    iam.put_role_policy(RoleName=role, PolicyName="allow", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}))
    _as_function(aws, "ec2").describe_vpcs()
    iam.put_role_policy(RoleName=role, PolicyName="deny", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "ec2:DescribeVpcs", "Resource": "*"}]}))
    with pytest.raises(ClientError, match="with an explicit deny in an identity-based policy"):
        _as_function(aws, "ec2").describe_vpcs()


def test_a_permissions_boundary_caps_what_a_role_s_policies_allow(aws: EmbeddedAws) -> None:
    role = aws.roles["SummarizeTickFunctionRole"]
    iam = aws.client("iam")
    iam.put_role_policy(RoleName=role, PolicyName="allow", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:DescribeVpcs", "ec2:DescribeSubnets"], "Resource": "*"}]}))
    boundary = iam.create_policy(PolicyName="b", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"}]}))["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=boundary)
    _as_function(aws, "ec2").describe_vpcs()
    with pytest.raises(ClientError, match="because no permissions boundary allows the ec2:DescribeSubnets action"):
        _as_function(aws, "ec2").describe_subnets()


def test_an_operation_the_embedded_aws_cannot_authorise_fails_loudly(aws: EmbeddedAws) -> None:
    with pytest.raises(ClientError, match="does not know what IAM authorises for ec2:DescribeKeyPairs"):
        _as_function(aws, "ec2").describe_key_pairs()
