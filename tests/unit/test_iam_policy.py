"""The fleet instance role's inline policy, trust policy and partition handling."""

from __future__ import annotations

from typing import Any

import pytest

from eiplane.models.spec import FleetSpec, parse_fleet_spec
from eiplane.prerequisites.iam import TRUST_POLICY, instance_policy, partition_of

BUCKET = "eiplane-artifacts-123456789012"
ACCOUNT = "123456789012"


def spec(backend_type: str, region: str = "us-east-1", name: str = "demo") -> FleetSpec:
    return parse_fleet_spec({"name": name, "region": region, "backend": {"type": backend_type},
                             "model": {"name": "m", "version": "1"}})


def statements(backend_type: str, region: str = "us-east-1", name: str = "demo") -> list[dict[str, Any]]:
    document = instance_policy(spec(backend_type, region, name), BUCKET, ACCOUNT)
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


COMMON_STATEMENTS = [
    {"Sid": "ReadFleetArtifacts", "Effect": "Allow", "Action": "s3:GetObject",
     "Resource": f"arn:aws:s3:::{BUCKET}/fleets/demo/*"},
    {"Sid": "ListFleetArtifacts", "Effect": "Allow", "Action": "s3:ListBucket",
     "Resource": f"arn:aws:s3:::{BUCKET}",
     "Condition": {"StringLike": {"s3:prefix": ["fleets/demo/*"]}}},
    {"Sid": "WriteValidationResults", "Effect": "Allow", "Action": "s3:PutObject",
     "Resource": f"arn:aws:s3:::{BUCKET}/fleets/demo/results/*"},
    {"Sid": "SsmAgentHeartbeat", "Effect": "Allow", "Action": "ssm:UpdateInstanceInformation",
     "Resource": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"},
    {"Sid": "SsmAgentMessages", "Effect": "Allow",
     "Action": ["ec2messages:GetMessages", "ec2messages:AcknowledgeMessage", "ec2messages:SendReply"],
     "Resource": "*"},
    # The model server's metrics, into its own namespace only (PutMetricData takes no resource).
    {"Sid": "PutServingMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
     "Condition": {"StringEquals": {"cloudwatch:namespace": "eiplane/Inference"}}},
]
AGENT_MESSAGES = "SsmAgentMessages"  # the SSM agent's message actions take no resource: "*" is AWS's
# Actions that take no resource, so "*" is what AWS requires: each narrowed otherwise or explained.
NO_RESOURCE = {AGENT_MESSAGES, "PutServingMetrics"}


@pytest.mark.parametrize("backend_type", ["gpu", "inferentia"])
def test_gpu_and_inferentia_get_only_the_artifact_and_agent_statements(backend_type: str) -> None:
    assert statements(backend_type) == COMMON_STATEMENTS


def test_the_agent_gets_no_parameter_store_read_as_ssm_core_would_give() -> None:
    actions = [a for s in statements("gpu") for a in as_list(s["Action"])]
    assert not any(a.startswith(("ssm:Get", "ssm:Describe", "ssm:List")) for a in actions)


def test_eia_gets_exactly_one_connect_statement() -> None:
    found = statements("eia", region="eu-west-1")
    extra = [s for s in found if s["Sid"] not in {c["Sid"] for c in COMMON_STATEMENTS}]
    assert extra == [{
        "Sid": "ConnectElasticInference",
        "Effect": "Allow",
        "Action": "elastic-inference:Connect",
        "Resource": f"arn:aws:elastic-inference:eu-west-1:{ACCOUNT}:elastic-inference-accelerator/*",
    }]
    assert len(found) == len(COMMON_STATEMENTS) + 1


@pytest.mark.parametrize("backend_type", ["eia", "gpu", "inferentia"])
def test_no_wildcard_resource_or_action(backend_type: str) -> None:
    for statement in statements(backend_type):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        assert all(r != "*" for r in as_list(statement["Resource"])) or statement["Sid"] in NO_RESOURCE
        assert all("*" not in a for a in as_list(statement["Action"]))


@pytest.mark.parametrize("backend_type", ["eia", "gpu", "inferentia"])
def test_s3_access_limited_to_the_fleet_prefix(backend_type: str) -> None:
    name = "my-fleet-7"
    for statement in statements(backend_type, name=name):
        actions = as_list(statement["Action"])
        if not any(a.startswith("s3:") for a in actions):
            continue
        for resource in as_list(statement["Resource"]):
            if resource == f"arn:aws:s3:::{BUCKET}":
                # Bucket-level: only ListBucket, only under the prefix.
                assert actions == ["s3:ListBucket"]
                assert statement["Condition"] == {"StringLike": {"s3:prefix": [f"fleets/{name}/*"]}}
            else:
                assert resource.startswith(f"arn:aws:s3:::{BUCKET}/fleets/{name}/")


def test_prefixes_of_similar_fleet_names_do_not_overlap() -> None:
    # Fleet 'abc' must not reach fleet 'abcd''s objects: the prefix ends with a slash.
    resources = [r for s in statements("gpu", name="abc") for r in as_list(s["Resource"])]
    assert f"arn:aws:s3:::{BUCKET}/fleets/abc/*" in resources
    assert not any(r.startswith(f"arn:aws:s3:::{BUCKET}/fleets/abc*") for r in resources)


def test_writes_only_under_results() -> None:
    writes = [s for s in statements("gpu") if "s3:PutObject" in as_list(s["Action"])]
    assert [s["Resource"] for s in writes] == [f"arn:aws:s3:::{BUCKET}/fleets/demo/results/*"]


@pytest.mark.parametrize(("region", "partition"), [
    ("us-east-1", "aws"), ("eu-central-1", "aws"), ("ap-south-1", "aws"),
    ("cn-north-1", "aws-cn"), ("cn-northwest-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"), ("us-gov-east-1", "aws-us-gov"),
])
def test_partition_of(region: str, partition: str) -> None:
    assert partition_of(region) == partition


@pytest.mark.parametrize(("region", "partition"), [
    ("us-iso-east-1", "aws-iso"), ("us-iso-west-1", "aws-iso"), ("us-isob-east-1", "aws-iso-b"),
])
def test_partition_of_iso_regions(region: str, partition: str) -> None:
    assert partition_of(region) == partition


@pytest.mark.parametrize(("region", "partition"), [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"),
                                                  ("us-iso-east-1", "aws-iso"), ("us-isob-east-1", "aws-iso-b")])
def test_policy_arns_use_the_region_partition(region: str, partition: str) -> None:
    for statement in statements("eia", region=region):
        for resource in as_list(statement["Resource"]):
            assert resource.startswith(f"arn:{partition}:") or statement["Sid"] in NO_RESOURCE
    connect = statements("eia", region=region)[-1]
    assert connect["Resource"] == (
        f"arn:{partition}:elastic-inference:{region}:{ACCOUNT}:elastic-inference-accelerator/*")


def test_trust_policy_is_ec2_only() -> None:
    assert TRUST_POLICY == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }
