"""`eiplane demo` (`make demo`): ProvisionFleet on the embedded AWS, run twice.

A small real model is packed at demo time (TorchScript and torch.export, golden outputs on
the CPU) and pushed to the gpu fleet, which gets two instances, each validated by real
inference before it is put in service. The eia and inferentia fleets run the prerequisites
stage (no instances: their artifacts need EI-enabled PyTorch or torch-neuronx). The second
run must find everything and make no mutating AWS call: counted from the calls the handlers
actually made, and cross-checked against the embedded AWS's inventory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import moto
from botocore.client import BaseClient

from eiplane.artifacts.push import push
from eiplane.cli.commands import LOCAL_POLL_S, execution_name, write_json
from eiplane.cli.demo_capacity import START, run_capacity_demo, write_clock
from eiplane.cli.demo_delete import run_delete_demo
from eiplane.cli.demo_rollout import run_rollout_demo
from eiplane.cli.progress import follow, full_report, print_plan, print_report
from eiplane.local.engine import EmbeddedAws, find_project_root
from eiplane.naming import model_prefix

FLEET_EVENTS = ("provision_fleet_eia.json", "provision_fleet_gpu.json", "provision_fleet_inferentia.json")
# Instances per fleet in the demo: only the gpu fleet's artifact can be packed on this machine.
DEMO_DESIRED = {"eia": 0, "gpu": 2, "inferentia": 0}
DEMO_MAX = {"eia": 1, "gpu": 3, "inferentia": 1}  # the gpu fleet's room to grow in the capacity demo
# Requests/s one instance serves, on the demo's compressed clock (cli/demo_capacity.py: a minute's
# requests are sent in MINUTE_SECONDS, so CloudWatch's per-minute rates are 60 / MINUTE_SECONDS times
# lower than the real rate): 0.5 here is 50 real requests/s, far below what a server measures on this
# CPU at validation.
DEMO_CAPACITY_RPS = 0.5
# Scale-in drains for this long (the target group's deregistration delay): requests in flight finish.
DEMO_DRAIN_SECONDS = 5


def create_private_network(ec2: BaseClient) -> dict[str, Any]:
    """A VPC as many teams have them: private subnets, no internet gateway, DNS hostnames off.
    Fleets here need SSM and S3 endpoints, and the VPC's DNS hostnames turned on."""
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "demo-private"}]}])["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": False})
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate(("us-east-1a", "us-east-1b"))]
    return {"vpc_id": vpc, "subnet_ids": subnets}


def inventory(aws: EmbeddedAws) -> dict[str, list[str]]:
    """What eiplane-managed resources exist, read straight from the embedded AWS."""
    ec2, iam = aws.client("ec2"), aws.client("iam")
    managed = [{"Name": "tag:eiplane:managed-by", "Values": ["eiplane"]}]
    return {
        "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups(Filters=managed)["SecurityGroups"]),
        "vpc_endpoints": sorted(e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]),
        "roles": sorted(r["RoleName"] for r in iam.list_roles(PathPrefix="/eiplane/")["Roles"]),
        "instances": sorted(i["InstanceId"] for r in ec2.describe_instances(Filters=managed)["Reservations"]
                            for i in r["Instances"] if i["State"]["Name"] == "running"),
        "instance_profiles": sorted(p["InstanceProfileName"]
                                    for p in iam.list_instance_profiles(PathPrefix="/eiplane/")["InstanceProfiles"]),
    }


def pack_demo_model(out_dir: Path, version: str = "1") -> Any:
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    return pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version=version, out_dir=out_dir, batch_sizes=(1, 8, 32),
                target="gpu")


def run_demo(report_path: str | None = None) -> int:
    root = find_project_root()
    specs = [json.loads((root / "events" / name).read_text()) for name in FLEET_EVENTS]
    for spec in specs:
        desired = DEMO_DESIRED[spec["backend"]["type"]]
        backend = spec["backend"]["type"]
        spec["capacity"] = {"min": min(desired, 1), "desired": desired, "max": DEMO_MAX[backend]}
        # What one instance serves through the model server: below what this CPU measures at
        # validation (which varies run to run), so the capacity demo is the same everywhere.
        # The eia and inferentia fleets have no instances here: capacity matching leaves them be.
        spec["scaling"] = {"capacity_per_instance_rps": DEMO_CAPACITY_RPS, "enabled": backend == "gpu"}
        # A loose latency objective: the rollout's p99 guardrail must judge the version, not how busy this
        # machine is (make test runs the demo beside other tests); capacity is set above, not measured.
        spec["serving"] = {"deregistration_delay_s": DEMO_DRAIN_SECONDS, "latency_p99_ms": 2000}
    artifact_dir = root / "out" / "artifacts" / "tiny-cnn-1"
    manifest = pack_demo_model(artifact_dir)
    print(f"packed tiny-cnn 1 into {artifact_dir.relative_to(root)}: "
          f"{', '.join(sorted(manifest.files))} (torch {manifest.torch_version})")
    with EmbeddedAws(root) as aws:
        # The instances' clock is the capacity demo's (its servers publish each compressed minute).
        clock_file = root / "out" / "demo-clock.txt"
        clock_file.parent.mkdir(parents=True, exist_ok=True)
        write_clock(clock_file, START)
        assert aws.instances is not None
        aws.instances.clock_file = clock_file
        sfn = aws.client("stepfunctions")
        machine = aws.state_machine_arn()
        print(f"embedded AWS: moto {moto.__version__}, in-process; template.yaml deployed as stack "
              f"{aws.stack.name} ({len(aws.stack.functions)} functions, state machine {machine.rsplit(':', 1)[-1]})")
        push(aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"], model_prefix("demo-gpu", "tiny-cnn", "1"),
             artifact_dir)
        private = create_private_network(aws.client("ec2"))
        specs[2]["network"] = private  # inferentia fleet in the private VPC
        print(f"private VPC for the inferentia fleet: {private['vpc_id']} {', '.join(private['subnet_ids'])}\n")

        print("== plan only (dry_run): what the first run will do, before it does anything")
        print(" ", end="")
        plan = follow(sfn, sfn.start_execution(stateMachineArn=machine, name="demo-plan",
                                               input=json.dumps({**specs[1], "dry_run": True}))["executionArn"],
                      compact=True, poll_s=LOCAL_POLL_S)
        print_plan(plan.output)

        passes: list[dict[str, Any]] = []
        snapshots = []
        for number, title in ((1, "first run: check, then create what is missing"),
                              (2, "second run: the same specs again")):
            print(f"\n== {title}")
            snapshots.append(inventory(aws))
            runs = []
            for spec in specs:
                name = execution_name(f"demo{number}-{spec['name']}")
                print(f"\n{spec['name']} ({spec['backend']['type']}): execution {name}\n ", end="")
                result = follow(sfn, sfn.start_execution(stateMachineArn=machine, name=name,
                                                         input=json.dumps(spec))["executionArn"], compact=True,
                                poll_s=LOCAL_POLL_S)
                report = full_report(aws.client("s3"), result.output) if result.status == "SUCCEEDED" else None
                if report is not None:
                    print_report(report)
                runs.append({"execution_arn": result.arn, "status": result.status, "error": result.error,
                             "message": result.error_message(), "states": result.states_entered(),
                             "summary": result.output, "report": report})
            passes.append({"pass": number, "fleets": runs})
        snapshots.append(inventory(aws))
        capacity = run_capacity_demo(aws, "demo-gpu", root / "out", clock_file)
        rollout = run_rollout_demo(aws, "demo-gpu", pack_demo_model, root / "out")
        deletion = run_delete_demo(aws, specs[2]["name"])  # the inferentia fleet (demo-inf2)

    second = passes[1]["fleets"]
    gpu_first = next(r["report"] for r in passes[0]["fleets"] if r["report"] and r["report"]["backend"]["type"] == "gpu")
    checks = {
        "gpu_instances_in_service": gpu_first["in_service"] if gpu_first else 0,
        "gpu_instances_validated": sum(bool(i["validation"] and i["validation"]["passed"])
                                       for i in gpu_first["instances"]) if gpu_first else 0,
        "second_run_same_instances": [i["instance_id"] for r in second if r["report"] for i in r["report"]["instances"]]
        == [i["instance_id"] for r in passes[0]["fleets"] if r["report"] for i in r["report"]["instances"]],
        "every_execution_succeeded": all(r["status"] == "SUCCEEDED" for p in passes for r in p["fleets"]),
        "second_run_all_found": all(r["report"] and r["report"]["summary"]["created"] == 0
                                    and r["report"]["summary"]["repaired"] == 0 for r in second),
        "second_run_mutating_calls": sum(len(r["report"]["mutating_calls"]) for r in second if r["report"]),
        "second_run_inventory_unchanged": snapshots[1] == snapshots[2],
        "dry_run_changed_nothing": snapshots[0] == inventory_empty(),
        "capacity_scaled_out": capacity["summary"]["scale_outs"] > 0 and capacity["summary"]["provisions_succeeded"],
        "capacity_scaled_in": capacity["summary"]["instances_drained"] > 0,
        "capacity_only_in_service_instances_run": capacity["summary"]["only_in_service_running"],
        "serving_requests_failed": capacity["serving"]["requests_failed"],
        "serving_failed_during_scale_in": capacity["serving"]["failed_during_scale_in"],
        "rollout_succeeded": rollout["status"] == "SUCCEEDED" and rollout["version_after"] == "tiny-cnn:2",
        "rollout_requests_failed": rollout["requests_failed"],
        "delete_left_nothing": deletion["nothing_left"],
    }
    ok = (checks["every_execution_succeeded"] and checks["second_run_all_found"]
          and checks["second_run_mutating_calls"] == 0 and checks["second_run_inventory_unchanged"]
          and checks["gpu_instances_in_service"] == checks["gpu_instances_validated"] == DEMO_DESIRED["gpu"]
          and checks["second_run_same_instances"] and checks["capacity_scaled_out"] and checks["capacity_scaled_in"]
          and checks["capacity_only_in_service_instances_run"]
          and checks["serving_requests_failed"] == 0 and checks["serving_failed_during_scale_in"] == 0
          and checks["rollout_succeeded"] and checks["rollout_requests_failed"] == 0
          and checks["delete_left_nothing"])
    print("\n== result")
    print(f"  first run : {sum(r['report']['summary']['created'] for r in passes[0]['fleets'] if r['report'])} created, "
          f"{sum(len(r['report']['mutating_calls']) for r in passes[0]['fleets'] if r['report'])} mutating AWS calls")
    print(f"  gpu fleet : {checks['gpu_instances_in_service']} instances in service, "
          f"{checks['gpu_instances_validated']} validated by inference")
    print(f"  second run: {sum(r['report']['summary']['found'] for r in second if r['report'])} found, "
          f"{checks['second_run_mutating_calls']} mutating AWS calls (counted from the calls each step made); "
          f"inventory unchanged: {checks['second_run_inventory_unchanged']}")
    cap = capacity["summary"]
    print(f"  capacity  : {cap['scale_outs']} scale-out(s), {cap['scale_ins']} scale-in(s), ready instances "
          f"{DEMO_DESIRED['gpu']} -> {cap['peak_ready']} -> {cap['final_ready']}; plot {capacity['plot']}")
    print(f"  rollout   : {rollout['version_before']} -> {rollout['version_after']} in {rollout['batches']} batch(es) "
          f"under traffic: {rollout['requests']} requests, {rollout['requests_failed']} failed")
    print(f"  delete    : {deletion['fleet']}: {deletion['status']}, {deletion['deleted']} deleted, "
          f"{len(deletion['kept'])} kept; tagged with it afterwards: {deletion['left'] or 'nothing'}")
    print(f"  {'OK' if ok else 'NOT OK'}")
    if report_path:
        write_json(report_path, {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "embedded_aws": {"moto": moto.__version__, "region": aws.region, "stack": aws.stack.outputs,
                             "virtual_wait_seconds": aws.clock.seconds},
            "plan": plan.output,
            "passes": passes,
            "inventory": snapshots[-1],
            "capacity_matching": capacity,
            "serving": capacity["serving"],
            "rollout": rollout,
            "fleet_delete": deletion,
            "checks": checks,
            "ok": ok,
        })
        print(f"  report: {report_path}")
    return 0 if ok else 1


def inventory_empty() -> dict[str, list[str]]:
    return {"security_groups": [], "vpc_endpoints": [], "roles": [], "instances": [], "instance_profiles": []}
