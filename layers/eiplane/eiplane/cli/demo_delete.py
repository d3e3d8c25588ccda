"""The demo's deletion: one fleet deleted by DeleteFleet, then the embedded account asked, service by
service and through the tagging API, for anything still tagged with it (the tests ask the same)."""

from __future__ import annotations

from typing import Any

from eiplane.cli.commands import LOCAL_POLL_S
from eiplane.cli.deletion import run_deletion
from eiplane.local.engine import EmbeddedAws


def tagged_with(aws: EmbeddedAws, fleet: str) -> dict[str, list[str]]:
    """Everything in the account that still carries eiplane:fleet=<fleet> (or is named for it), asked of each
    service directly, and of the tagging API for the types moto answers there."""
    ec2, elbv2, iam = aws.client("ec2"), aws.client("elbv2"), aws.client("iam")
    by_tag = [{"Name": "tag:eiplane:fleet", "Values": [fleet]}]
    balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    groups = elbv2.describe_target_groups()["TargetGroups"]
    arns = [b["LoadBalancerArn"] for b in balancers] + [g["TargetGroupArn"] for g in groups]
    elb_tags = {d["ResourceArn"]: {t["Key"]: t["Value"] for t in d["Tags"]}
                for d in (elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"] if arns else [])}
    described = [i for r in ec2.describe_instances(Filters=by_tag)["Reservations"] for i in r["Instances"]]
    terminated = {i["InstanceId"] for i in described if i["State"]["Name"] == "terminated"}  # listed a while, as on
    # AWS; they bill nothing
    return {
        "instances": [i["InstanceId"] for i in described if i["InstanceId"] not in terminated],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=by_tag)["SecurityGroups"]],
        "load_balancers_and_target_groups": [a for a in arns if elb_tags.get(a, {}).get("eiplane:fleet") == fleet],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == f"eiplane-{fleet}-instance"],
        "instance_profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
                              if p["InstanceProfileName"] == f"eiplane-{fleet}-instance"],
        "alarms": [a["AlarmName"] for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]
                   if a["AlarmName"].endswith(f"-{fleet}")],
        "tagging_api": [r["ResourceARN"] for r in aws.client("resourcegroupstaggingapi").get_resources(
            TagFilters=[{"Key": "eiplane:fleet", "Values": [fleet]}])["ResourceTagMappingList"]
            if r["ResourceARN"].rsplit("/", 1)[-1] not in terminated],
        "state_items": [i["sk"]["S"] for i in aws.client("dynamodb").scan(
            TableName=aws.stack.outputs["FleetStateTableName"])["Items"]
            if i["pk"]["S"] == f"FLEET#{fleet}" or i["sk"]["S"] == f"FLEET#{fleet}"],
    }


def run_delete_demo(aws: EmbeddedAws, fleet: str) -> dict[str, Any]:
    print(f"\n== fleet delete: {fleet}, then the account is asked for anything still tagged with it")
    result, report = run_deletion(aws.client("stepfunctions"), aws.client("s3"),
                                  aws.state_machine_arn("DeleteFleetStateMachine"),
                                  {"fleet": fleet, "dry_run": False, "purge_artifacts": False}, LOCAL_POLL_S)
    left = {kind: found for kind, found in tagged_with(aws, fleet).items() if found}
    items = report["items"] if report else []
    return {"fleet": fleet, "execution_arn": result.arn, "status": result.status, "error": result.error,
            "deleted": sum(i["action"] == "deleted" for i in items), "kept": [i for i in items if i["action"] == "kept"],
            "left": left, "nothing_left": result.status == "SUCCEEDED" and not left}
