"""What IAM authorises for each API call eiplane makes: the actions, the resources (one
authorisation per resource the call touches, as AWS evaluates them) and the condition-key values
the request carries (tags requested and present, the create action behind implied tagging, the
role passed and to which service, the permissions boundary, the S3 prefix, the metric namespace).

Every action and resource type produced here is checked against the Service Authorization
Reference by the evaluator (an action or a resource type it does not list fails the call loudly),
and condition keys a request carries that AWS would not set for that action and resource type are
dropped there. An operation that is not here cannot be authorised: the embedded AWS refuses it
(`CatalogueGap`) rather than let it through, so a new call in the code fails its first test until
its entry is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

EC2_ID_TYPES = (  # id prefix -> resource type (longest prefixes first: vpce- before vpc-)
    ("vpce-", "vpc-endpoint"), ("vpc-", "vpc"), ("subnet-", "subnet"), ("sg-", "security-group"),
    ("i-", "instance"), ("vol-", "volume"), ("rtb-", "route-table"), ("ami-", "image"),
    ("eni-", "network-interface"), ("igw-", "internet-gateway"), ("snap-", "snapshot"), ("acl-", "network-acl"),
)
PUBLIC_PARAMETER_PREFIX = "/aws/service/"


@dataclass(frozen=True)
class AuthRequest:
    action: str
    resource: str  # an ARN, or "*" for actions that take no resource
    resource_type: str | None  # the Service Authorization Reference's name for it
    context: dict[str, Any] = field(default_factory=dict)


class CatalogueGap(Exception):
    """An operation the catalogue has no entry for: the embedded AWS cannot authorise it."""


@dataclass(frozen=True)
class RoleFacts:
    arn: str
    path: str
    tags: dict[str, str]
    boundary_arn: str | None


@dataclass(frozen=True)
class ProfileFacts:
    arn: str
    path: str
    tags: dict[str, str]
    role_names: tuple[str, ...]


class AccountFacts(Protocol):
    """What the catalogue reads from the account (the enforcer reads it from moto's backends)."""

    account: str
    region: str
    partition: str

    def ec2_tags(self, resource_id: str) -> dict[str, str]: ...
    def role(self, name: str) -> RoleFacts | None: ...
    def instance_profile(self, name: str) -> ProfileFacts | None: ...
    def alarm_tags(self, name: str) -> dict[str, str]: ...
    def elb_tags(self, arn: str) -> dict[str, str]: ...


# --- helpers ----------------------------------------------------------------------------------

def _tags(tags: Iterable[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in tags or []}


def request_tags(tags: dict[str, str]) -> dict[str, Any]:
    context: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = sorted(tags)
    return context


def resource_tags(tags: dict[str, str], *prefixes: str) -> dict[str, Any]:
    return {f"{prefix}/{k}": v for k, v in tags.items() for prefix in ("aws:ResourceTag", *prefixes)}


def ec2_type(resource_id: str) -> str:
    for prefix, kind in EC2_ID_TYPES:
        if resource_id.startswith(prefix):
            return kind
    raise CatalogueGap(f"EC2 resource {resource_id}: unknown id prefix")


def ec2_arn(facts: AccountFacts, kind: str, resource_id: str) -> str:
    if kind in ("image", "snapshot"):  # owned by anyone: no account in the ARN
        return f"arn:{facts.partition}:ec2:{facts.region}::{kind}/{resource_id}"
    return f"arn:{facts.partition}:ec2:{facts.region}:{facts.account}:{kind}/{resource_id}"


def ec2_existing(facts: AccountFacts, action: str, resource_id: str, **extra: Any) -> AuthRequest:
    kind = ec2_type(resource_id)
    return AuthRequest(action, ec2_arn(facts, kind, resource_id), kind,
                       {**resource_tags(facts.ec2_tags(resource_id), "ec2:ResourceTag"), **extra})


def ec2_new(facts: AccountFacts, action: str, kind: str, tags: dict[str, str], **extra: Any) -> AuthRequest:
    """A resource the call creates: its id is not known yet, so IAM sees `<type>/*`."""
    return AuthRequest(action, ec2_arn(facts, kind, "*"), kind, {**request_tags(tags), **extra})


def tag_specifications(params: dict[str, Any]) -> dict[str, dict[str, str]]:
    specs: dict[str, dict[str, str]] = {}
    for spec in params.get("TagSpecifications") or []:
        specs.setdefault(spec["ResourceType"], {}).update(_tags(spec.get("Tags")))
    return specs


def tagged_at_creation(facts: AccountFacts, create_action: str, specs: dict[str, dict[str, str]]) -> list[AuthRequest]:
    """Tags given to a create call are authorised as ec2:CreateTags too, with ec2:CreateAction set."""
    return [ec2_new(facts, "ec2:CreateTags", kind, tags, **{"ec2:CreateAction": create_action})
            for kind, tags in specs.items() if tags]


def wildcard(action: str, **context: Any) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    return lambda params, facts: [AuthRequest(action, "*", None, dict(context))]


def hosted_zone(facts: AccountFacts) -> AuthRequest:
    """Private DNS for an interface endpoint associates the VPC with AWS's private hosted zone for the
    service, on the caller's authority (route53:AssociateVPCWithHostedZone on a zone AWS owns)."""
    return AuthRequest("route53:AssociateVPCWithHostedZone", f"arn:{facts.partition}:route53:::hostedzone/ZEMBEDDED",
                       "hostedzone")


# --- EC2 --------------------------------------------------------------------------------------

def _run_instances(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    specs = tag_specifications(params)
    subnet = params.get("SubnetId")
    metadata = params.get("MetadataOptions") or {}
    profile_arn = (params.get("IamInstanceProfile") or {}).get("Arn")
    profile_name = (params.get("IamInstanceProfile") or {}).get("Name") or (
        profile_arn.rsplit("/", 1)[-1] if profile_arn else None)
    profile = facts.instance_profile(profile_name) if profile_name else None
    instance_context = {"ec2:InstanceType": params.get("InstanceType", ""),
                        "ec2:MetadataHttpTokens": metadata.get("HttpTokens", "optional"),
                        "ec2:MetadataHttpEndpoint": metadata.get("HttpEndpoint", "enabled"),
                        "ec2:MetadataHttpPutResponseHopLimit": str(metadata.get("HttpPutResponseHopLimit", 1))}
    if profile is not None:
        instance_context["ec2:InstanceProfile"] = profile.arn
    requests = [ec2_new(facts, "ec2:RunInstances", "instance", specs.get("instance", {}), **instance_context)]
    for mapping in params.get("BlockDeviceMappings") or []:
        ebs = mapping.get("Ebs") or {}
        requests.append(ec2_new(facts, "ec2:RunInstances", "volume", specs.get("volume", {}),
                                **{"ec2:Encrypted": str(bool(ebs.get("Encrypted"))).lower(),
                                   "ec2:VolumeType": ebs.get("VolumeType", "gp2"),
                                   "ec2:VolumeSize": str(ebs.get("VolumeSize", ""))}))
    requests.append(ec2_existing(facts, "ec2:RunInstances", params["ImageId"]))
    requests.append(ec2_new(facts, "ec2:RunInstances", "network-interface", specs.get("network-interface", {})))
    if subnet:
        requests.append(ec2_existing(facts, "ec2:RunInstances", subnet))
    requests += [ec2_existing(facts, "ec2:RunInstances", group) for group in params.get("SecurityGroupIds") or []]
    if params.get("ElasticInferenceAccelerators"):
        requests.append(AuthRequest("ec2:RunInstances", f"arn:{facts.partition}:elastic-inference:{facts.region}:"
                                    f"{facts.account}:elastic-inference-accelerator/*", "elastic-inference"))
    requests += tagged_at_creation(facts, "RunInstances", specs)
    if profile is not None:  # launching with a role passes it to EC2
        for role_name in profile.role_names:
            role = facts.role(role_name)
            if role is not None:
                requests.append(AuthRequest("iam:PassRole", role.arn, "role",
                                            {"iam:PassedToService": "ec2.amazonaws.com"}))
    return requests


def _on_instances(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    return lambda params, facts: [ec2_existing(facts, action, i) for i in params.get("InstanceIds") or []]


def _create_security_group(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    specs = tag_specifications(params)
    requests = [ec2_new(facts, "ec2:CreateSecurityGroup", "security-group", specs.get("security-group", {}))]
    if params.get("VpcId"):
        requests.append(ec2_existing(facts, "ec2:CreateSecurityGroup", params["VpcId"]))
    return requests + tagged_at_creation(facts, "CreateSecurityGroup", specs)


def _security_group_rules(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        if not params.get("GroupId"):
            raise CatalogueGap(f"{action} by group name: eiplane always names the group by id")
        return [ec2_existing(facts, action, params["GroupId"])]
    return requests


def _tag_change(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        tags = _tags(params.get("Tags"))
        context = request_tags(tags) if action == "ec2:CreateTags" else (
            {"aws:TagKeys": sorted(tags)} if tags else {})
        return [ec2_existing(facts, action, resource, **context) for resource in params.get("Resources") or []]
    return requests


def _create_vpc_endpoint(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    specs = tag_specifications(params)
    interface = params.get("VpcEndpointType", "Gateway") == "Interface"
    requests = [ec2_new(facts, "ec2:CreateVpcEndpoint", "vpc-endpoint", specs.get("vpc-endpoint", {}),
                        **{"ec2:VpceServiceName": params.get("ServiceName", "")}),
                ec2_existing(facts, "ec2:CreateVpcEndpoint", params["VpcId"])]
    for key in ("SubnetIds", "SecurityGroupIds", "RouteTableIds"):
        requests += [ec2_existing(facts, "ec2:CreateVpcEndpoint", r) for r in params.get(key) or []]
    if interface and params.get("PrivateDnsEnabled", True):
        requests.append(hosted_zone(facts))
    return requests + tagged_at_creation(facts, "CreateVpcEndpoint", specs)


def _modify_vpc_endpoint(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    requests = [ec2_existing(facts, "ec2:ModifyVpcEndpoint", params["VpcEndpointId"])]
    for key in ("AddSubnetIds", "RemoveSubnetIds", "AddSecurityGroupIds", "RemoveSecurityGroupIds",
                "AddRouteTableIds", "RemoveRouteTableIds"):
        requests += [ec2_existing(facts, "ec2:ModifyVpcEndpoint", r) for r in params.get(key) or []]
    if params.get("PrivateDnsEnabled"):
        requests.append(hosted_zone(facts))
    return requests


def _delete_vpc_endpoints(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    return [ec2_existing(facts, "ec2:DeleteVpcEndpoints", e) for e in params.get("VpcEndpointIds") or []]


# --- IAM --------------------------------------------------------------------------------------

def role_arn(facts: AccountFacts, name: str, path: str | None = None) -> str:
    """An existing role's ARN carries its path; a role that does not exist is authorised as
    role/<name>, since IAM cannot know a path for it."""
    if path is None:
        role = facts.role(name)
        path = role.path if role is not None else "/"
    return f"arn:{facts.partition}:iam::{facts.account}:role{path}{name}"


def profile_arn(facts: AccountFacts, name: str, path: str | None = None) -> str:
    if path is None:
        profile = facts.instance_profile(name)
        path = profile.path if profile is not None else "/"
    return f"arn:{facts.partition}:iam::{facts.account}:instance-profile{path}{name}"


def _on_role(action: str, **keys: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    """An action on an existing role: its tags and permissions boundary are in the context; `keys`
    maps more condition keys to the request parameters that hold their values."""
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        role = facts.role(params["RoleName"])
        context: dict[str, Any] = {}
        if role is not None:
            context.update(resource_tags(role.tags))
            if role.boundary_arn:
                context["iam:PermissionsBoundary"] = role.boundary_arn
        for key, param in keys.items():
            if params.get(param) is not None:
                context[key] = params[param]
        if action == "iam:TagRole":
            context.update(request_tags(_tags(params.get("Tags"))))
        if action == "iam:UntagRole":
            context["aws:TagKeys"] = list(params.get("TagKeys") or [])
        return [AuthRequest(action, role_arn(facts, params["RoleName"]), "role", context)]
    return requests


def _create_role(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    arn = role_arn(facts, params["RoleName"], params.get("Path") or "/")
    context = request_tags(tags)
    if params.get("PermissionsBoundary"):
        context["iam:PermissionsBoundary"] = params["PermissionsBoundary"]
    requests = [AuthRequest("iam:CreateRole", arn, "role", context)]
    if tags:  # a role created with tags is tagged on the caller's authority too
        requests.append(AuthRequest("iam:TagRole", arn, "role", request_tags(tags)))
    return requests


def _on_profile(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        profile = facts.instance_profile(params["InstanceProfileName"])
        context = resource_tags(profile.tags) if profile is not None else {}
        if action == "iam:TagInstanceProfile":
            context.update(request_tags(_tags(params.get("Tags"))))
        result = [AuthRequest(action, profile_arn(facts, params["InstanceProfileName"]), "instance-profile", context)]
        if action == "iam:AddRoleToInstanceProfile":  # "must be granted the PassRole permission on the role"
            result.append(AuthRequest("iam:PassRole", role_arn(facts, params["RoleName"]), "role"))
        return result
    return requests


def _create_instance_profile(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    arn = profile_arn(facts, params["InstanceProfileName"], params.get("Path") or "/")
    requests = [AuthRequest("iam:CreateInstanceProfile", arn, "instance-profile", request_tags(tags))]
    if tags:
        requests.append(AuthRequest("iam:TagInstanceProfile", arn, "instance-profile", request_tags(tags)))
    return requests


# --- other services ---------------------------------------------------------------------------

def parameter_arn(facts: AccountFacts, name: str) -> str:
    account = "" if name.startswith(PUBLIC_PARAMETER_PREFIX) else facts.account  # AWS's public parameters
    return f"arn:{facts.partition}:ssm:{facts.region}:{account}:parameter/{name.lstrip('/')}"


def _get_parameters(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        names = params.get("Names") or [params["Name"]]
        return [AuthRequest(action, parameter_arn(facts, n), "parameter") for n in names]
    return requests


def _send_command(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    document = params["DocumentName"]
    owner = "" if document.startswith(("AWS-", "AWSEC2-", "AWSSupport-")) else facts.account
    arn = document if document.startswith("arn:") else \
        f"arn:{facts.partition}:ssm:{facts.region}:{owner}:document/{document}"
    requests = [AuthRequest("ssm:SendCommand", arn, "document")]
    for instance in params.get("InstanceIds") or []:
        tags = facts.ec2_tags(instance)
        requests.append(AuthRequest("ssm:SendCommand", ec2_arn(facts, "instance", instance), "instance",
                                    resource_tags(tags, "ssm:resourceTag")))
    if params.get("OutputS3BucketName"):
        requests.append(AuthRequest("ssm:SendCommand", f"arn:{facts.partition}:s3:::{params['OutputS3BucketName']}",
                                    "bucket"))
    return requests


def table_arn(facts: AccountFacts, name: str) -> str:
    return f"arn:{facts.partition}:dynamodb:{facts.region}:{facts.account}:table/{name}"


def _on_table(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        arn = table_arn(facts, params["TableName"])
        if params.get("IndexName"):
            return [AuthRequest(action, f"{arn}/index/{params['IndexName']}", "index")]
        key = params.get("Key") or params.get("Item") or {}
        leading = [next(iter(v.values())) for k, v in key.items() if k == "pk" and isinstance(v, dict)]
        return [AuthRequest(action, arn, "table", {"dynamodb:LeadingKeys": leading} if leading else {})]
    return requests


def alarm_arn(facts: AccountFacts, name: str) -> str:
    return f"arn:{facts.partition}:cloudwatch:{facts.region}:{facts.account}:alarm:{name}"


def _put_metric_alarm(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    arn = alarm_arn(facts, params["AlarmName"])
    context: dict[str, Any] = {**request_tags(tags), **resource_tags(facts.alarm_tags(params["AlarmName"]))}
    if params.get("AlarmActions"):
        context["cloudwatch:AlarmActions"] = list(params["AlarmActions"])
    requests = [AuthRequest("cloudwatch:PutMetricAlarm", arn, "alarm", context)]
    if tags:  # "to create an alarm with tags, you must have the cloudwatch:TagResource permission"
        requests.append(AuthRequest("cloudwatch:TagResource", arn, "alarm", request_tags(tags)))
    return requests


def _on_alarms(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        names = params.get("AlarmNames") or ([params["AlarmName"]] if params.get("AlarmName") else ["*"])
        return [AuthRequest(action, alarm_arn(facts, n), "alarm",
                            resource_tags(facts.alarm_tags(n)) if n != "*" else {}) for n in names]
    return requests


def _put_metric_data(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    return [AuthRequest("cloudwatch:PutMetricData", "*", None, {"cloudwatch:namespace": params.get("Namespace", "")})]


def _on_state_machine(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    return lambda params, facts: [AuthRequest(action, params["stateMachineArn"], "statemachine")]


def _on_execution(action: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    return lambda params, facts: [AuthRequest(action, params["executionArn"], "execution")]


def _invoke(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    name = params["FunctionName"]
    arn = name if name.startswith("arn:") else \
        f"arn:{facts.partition}:lambda:{facts.region}:{facts.account}:function:{name}"
    return [AuthRequest("lambda:InvokeFunction", arn, "function")]


# --- Elastic Load Balancing (v2) ----------------------------------------------------------------

ELB_SERVICE_LINKED_ROLE = "AWSServiceRoleForElasticLoadBalancing"


def elb_type(arn: str) -> str:
    """The Service Authorization Reference's resource type of an ELBv2 ARN. Its data (iam-data) keeps
    ELB v1's entry where v1 and v2 share an action name (CreateLoadBalancer, AddTags,
    ModifyLoadBalancerAttributes): those list only `loadbalancer`, whose ARN pattern
    (loadbalancer/${LoadBalancerName}) an ALB's ARN matches; see evaluator.UNCATALOGUED for the rest."""
    kind = arn.split(":", 5)[5].split("/", 1)[0]
    if kind == "loadbalancer":
        return "loadbalancer/app/"
    if kind in ("listener", "listener-rule"):
        return f"{kind}/app"
    if kind in ("targetgroup", "truststore"):
        return kind
    raise CatalogueGap(f"ELB resource {arn}: unknown resource type")


def elb_arn(facts: AccountFacts, path: str) -> str:
    return f"arn:{facts.partition}:elasticloadbalancing:{facts.region}:{facts.account}:{path}"


def elb_existing(facts: AccountFacts, action: str, arn: str, resource_type: str | None = None,
                 **extra: Any) -> AuthRequest:
    return AuthRequest(action, arn, resource_type or elb_type(arn),
                       {**resource_tags(facts.elb_tags(arn), "elasticloadbalancing:ResourceTag"), **extra})


def _elb_tagged_at_creation(facts: AccountFacts, create_action: str, arn: str, resource_type: str,
                            tags: dict[str, str]) -> list[AuthRequest]:
    """Tags given to a create call are authorised as elasticloadbalancing:AddTags too, with
    elasticloadbalancing:CreateAction set (as EC2's CreateTags on create)."""
    if not tags:
        return []
    return [AuthRequest("elasticloadbalancing:AddTags", arn, "loadbalancer" if resource_type == "loadbalancer" else None,
                        {**request_tags(tags), "elasticloadbalancing:CreateAction": create_action})]


def _create_load_balancer(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    arn = elb_arn(facts, f"loadbalancer/{'net' if params.get('Type') == 'network' else 'app'}/{params['Name']}/*")
    context = {**request_tags(tags), "elasticloadbalancing:Scheme": params.get("Scheme", "internet-facing"),
               "elasticloadbalancing:Subnet": list(params.get("Subnets") or []),
               "elasticloadbalancing:SecurityGroup": list(params.get("SecurityGroups") or [])}
    requests = [AuthRequest("elasticloadbalancing:CreateLoadBalancer", arn, "loadbalancer", context),
                *_elb_tagged_at_creation(facts, "CreateLoadBalancer", arn, "loadbalancer", tags)]
    if facts.role(ELB_SERVICE_LINKED_ROLE) is None:
        # The account's first balancer: ELB creates its service-linked role, on the caller's authority.
        requests.append(AuthRequest(
            "iam:CreateServiceLinkedRole", f"arn:{facts.partition}:iam::{facts.account}:role/aws-service-role/"
            f"elasticloadbalancing.amazonaws.com/{ELB_SERVICE_LINKED_ROLE}", "role",
            {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}))
    return requests


def _create_target_group(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    arn = elb_arn(facts, f"targetgroup/{params['Name']}/*")
    return [AuthRequest("elasticloadbalancing:CreateTargetGroup", arn, "targetgroup", request_tags(tags)),
            *_elb_tagged_at_creation(facts, "CreateTargetGroup", arn, "targetgroup", tags)]


def _create_listener(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    balancer = params["LoadBalancerArn"]
    listener = balancer.replace(":loadbalancer/", ":listener/", 1) + "/*"
    context = {**request_tags(tags), "elasticloadbalancing:ListenerProtocol": params.get("Protocol", "")}
    if params.get("SslPolicy"):
        context["elasticloadbalancing:SecurityPolicy"] = params["SslPolicy"]
    return [elb_existing(facts, "elasticloadbalancing:CreateListener", balancer, **context),
            *_elb_tagged_at_creation(facts, "CreateListener", listener, "listener/app", tags)]


def _elb_on(action: str, key: str, resource_type: str | None = None,
            **context_params: str) -> Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]:
    def requests(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
        context = {condition: params[param] for condition, param in context_params.items() if params.get(param)}
        return [elb_existing(facts, action, params[key], resource_type, **context)]
    return requests


def _elb_add_tags(params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    tags = _tags(params.get("Tags"))
    return [elb_existing(facts, "elasticloadbalancing:AddTags", arn,
                         "loadbalancer" if elb_type(arn) == "loadbalancer/app/" else None, **request_tags(tags))
            for arn in params.get("ResourceArns") or []]


Entry = Callable[[dict[str, Any], AccountFacts], list[AuthRequest]]

CATALOGUE: dict[tuple[str, str], Entry] = {
    # EC2: most Describe* actions take no resource.
    **{("ec2", op): wildcard(f"ec2:{op}") for op in (
        "DescribeInstances", "DescribeImages", "DescribeSubnets", "DescribeVpcs", "DescribeRouteTables",
        "DescribeSecurityGroups", "DescribeSecurityGroupRules", "DescribeVpcEndpoints",
        "DescribeVpcEndpointServices", "DescribeInstanceTypeOfferings", "DescribeTags", "DescribeAvailabilityZones",
        "DescribeInternetGateways", "DescribeNatGateways", "DescribeIamInstanceProfileAssociations")},
    ("ec2", "RunInstances"): _run_instances,
    ("ec2", "StartInstances"): _on_instances("ec2:StartInstances"),
    ("ec2", "StopInstances"): _on_instances("ec2:StopInstances"),
    ("ec2", "TerminateInstances"): _on_instances("ec2:TerminateInstances"),
    ("ec2", "CreateSecurityGroup"): _create_security_group,
    ("ec2", "AuthorizeSecurityGroupIngress"): _security_group_rules("ec2:AuthorizeSecurityGroupIngress"),
    ("ec2", "AuthorizeSecurityGroupEgress"): _security_group_rules("ec2:AuthorizeSecurityGroupEgress"),
    ("ec2", "RevokeSecurityGroupIngress"): _security_group_rules("ec2:RevokeSecurityGroupIngress"),
    ("ec2", "RevokeSecurityGroupEgress"): _security_group_rules("ec2:RevokeSecurityGroupEgress"),
    ("ec2", "DeleteSecurityGroup"): _security_group_rules("ec2:DeleteSecurityGroup"),
    ("ec2", "CreateTags"): _tag_change("ec2:CreateTags"),
    ("ec2", "DeleteTags"): _tag_change("ec2:DeleteTags"),
    ("ec2", "ModifyVpcAttribute"): lambda params, facts: [ec2_existing(facts, "ec2:ModifyVpcAttribute", params["VpcId"])],
    ("ec2", "DescribeVpcAttribute"): lambda params, facts: [
        ec2_existing(facts, "ec2:DescribeVpcAttribute", params["VpcId"])],
    ("ec2", "CreateVpcEndpoint"): _create_vpc_endpoint,
    ("ec2", "ModifyVpcEndpoint"): _modify_vpc_endpoint,
    ("ec2", "DeleteVpcEndpoints"): _delete_vpc_endpoints,
    # IAM
    ("iam", "CreateRole"): _create_role,
    ("iam", "GetRole"): _on_role("iam:GetRole"),
    ("iam", "TagRole"): _on_role("iam:TagRole"),
    ("iam", "UntagRole"): _on_role("iam:UntagRole"),
    ("iam", "ListRoleTags"): _on_role("iam:ListRoleTags"),
    ("iam", "UpdateAssumeRolePolicy"): _on_role("iam:UpdateAssumeRolePolicy"),
    ("iam", "GetRolePolicy"): _on_role("iam:GetRolePolicy"),
    ("iam", "PutRolePolicy"): _on_role("iam:PutRolePolicy"),
    ("iam", "DeleteRolePolicy"): _on_role("iam:DeleteRolePolicy"),
    ("iam", "ListRolePolicies"): _on_role("iam:ListRolePolicies"),
    ("iam", "ListAttachedRolePolicies"): _on_role("iam:ListAttachedRolePolicies"),
    ("iam", "AttachRolePolicy"): _on_role("iam:AttachRolePolicy", **{"iam:PolicyARN": "PolicyArn"}),
    ("iam", "DetachRolePolicy"): _on_role("iam:DetachRolePolicy", **{"iam:PolicyARN": "PolicyArn"}),
    ("iam", "PutRolePermissionsBoundary"): lambda params, facts: [AuthRequest(
        "iam:PutRolePermissionsBoundary", role_arn(facts, params["RoleName"]), "role",
        {"iam:PermissionsBoundary": params["PermissionsBoundary"]})],
    ("iam", "DeleteRole"): _on_role("iam:DeleteRole"),
    ("iam", "CreateInstanceProfile"): _create_instance_profile,
    ("iam", "GetInstanceProfile"): _on_profile("iam:GetInstanceProfile"),
    ("iam", "ListInstanceProfileTags"): _on_profile("iam:ListInstanceProfileTags"),
    ("iam", "TagInstanceProfile"): _on_profile("iam:TagInstanceProfile"),
    ("iam", "AddRoleToInstanceProfile"): _on_profile("iam:AddRoleToInstanceProfile"),
    ("iam", "RemoveRoleFromInstanceProfile"): _on_profile("iam:RemoveRoleFromInstanceProfile"),
    ("iam", "DeleteInstanceProfile"): _on_profile("iam:DeleteInstanceProfile"),
    # STS: GetCallerIdentity needs no permission (AWS allows it even under an explicit deny).
    ("sts", "GetCallerIdentity"): lambda params, facts: [],
    # SSM
    ("ssm", "GetParameter"): _get_parameters("ssm:GetParameter"),
    ("ssm", "GetParameters"): _get_parameters("ssm:GetParameters"),
    ("ssm", "SendCommand"): _send_command,
    ("ssm", "DescribeInstanceInformation"): wildcard("ssm:DescribeInstanceInformation"),
    ("ssm", "GetCommandInvocation"): wildcard("ssm:GetCommandInvocation"),
    ("ssm", "ListCommandInvocations"): wildcard("ssm:ListCommandInvocations"),
    # DynamoDB
    **{("dynamodb", op): _on_table(f"dynamodb:{op}") for op in (
        "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "DescribeTable")},
    # CloudWatch
    ("cloudwatch", "PutMetricAlarm"): _put_metric_alarm,
    ("cloudwatch", "DescribeAlarms"): _on_alarms("cloudwatch:DescribeAlarms"),
    ("cloudwatch", "DeleteAlarms"): _on_alarms("cloudwatch:DeleteAlarms"),
    ("cloudwatch", "SetAlarmState"): _on_alarms("cloudwatch:SetAlarmState"),
    ("cloudwatch", "PutMetricData"): _put_metric_data,
    ("cloudwatch", "GetMetricData"): wildcard("cloudwatch:GetMetricData"),
    ("cloudwatch", "GetMetricStatistics"): wildcard("cloudwatch:GetMetricStatistics"),
    ("cloudwatch", "ListMetrics"): wildcard("cloudwatch:ListMetrics"),
    # Step Functions
    ("stepfunctions", "StartExecution"): _on_state_machine("states:StartExecution"),
    ("stepfunctions", "DescribeStateMachine"): _on_state_machine("states:DescribeStateMachine"),
    ("stepfunctions", "ListExecutions"): _on_state_machine("states:ListExecutions"),
    ("stepfunctions", "DescribeExecution"): _on_execution("states:DescribeExecution"),
    ("stepfunctions", "GetExecutionHistory"): _on_execution("states:GetExecutionHistory"),
    ("stepfunctions", "StopExecution"): _on_execution("states:StopExecution"),
    # Lambda
    ("lambda", "Invoke"): _invoke,
    # Elastic Load Balancing v2: Describe* actions take no resource.
    **{("elbv2", op): wildcard(f"elasticloadbalancing:{op}") for op in (
        "DescribeLoadBalancers", "DescribeTargetGroups", "DescribeListeners", "DescribeTags", "DescribeTargetHealth",
        "DescribeTargetGroupAttributes", "DescribeLoadBalancerAttributes")},
    ("elbv2", "CreateLoadBalancer"): _create_load_balancer,
    ("elbv2", "CreateTargetGroup"): _create_target_group,
    ("elbv2", "CreateListener"): _create_listener,
    ("elbv2", "AddTags"): _elb_add_tags,
    ("elbv2", "ModifyListener"): _elb_on("elasticloadbalancing:ModifyListener", "ListenerArn",
                                         **{"elasticloadbalancing:ListenerProtocol": "Protocol",
                                            "elasticloadbalancing:SecurityPolicy": "SslPolicy"}),
    ("elbv2", "DeleteListener"): _elb_on("elasticloadbalancing:DeleteListener", "ListenerArn"),
    # DeleteLoadBalancer shares its name with ELB v1's, whose entry the reference keeps (see elb_type).
    ("elbv2", "DeleteLoadBalancer"): _elb_on("elasticloadbalancing:DeleteLoadBalancer", "LoadBalancerArn",
                                             "loadbalancer"),
    ("elbv2", "DeleteTargetGroup"): _elb_on("elasticloadbalancing:DeleteTargetGroup", "TargetGroupArn"),
    ("elbv2", "ModifyTargetGroup"): _elb_on("elasticloadbalancing:ModifyTargetGroup", "TargetGroupArn"),
    ("elbv2", "ModifyTargetGroupAttributes"): _elb_on("elasticloadbalancing:ModifyTargetGroupAttributes",
                                                      "TargetGroupArn"),
    ("elbv2", "RegisterTargets"): _elb_on("elasticloadbalancing:RegisterTargets", "TargetGroupArn"),
    ("elbv2", "DeregisterTargets"): _elb_on("elasticloadbalancing:DeregisterTargets", "TargetGroupArn"),
    ("elbv2", "ModifyLoadBalancerAttributes"): _elb_on("elasticloadbalancing:ModifyLoadBalancerAttributes",
                                                       "LoadBalancerArn", "loadbalancer"),
    ("elbv2", "SetSecurityGroups"): _elb_on("elasticloadbalancing:SetSecurityGroups", "LoadBalancerArn",
                                            **{"elasticloadbalancing:SecurityGroup": "SecurityGroups"}),
    ("elbv2", "SetSubnets"): _elb_on("elasticloadbalancing:SetSubnets", "LoadBalancerArn",
                                     **{"elasticloadbalancing:Subnet": "Subnets"}),
}


def requests_for(service: str, operation: str, params: dict[str, Any], facts: AccountFacts) -> list[AuthRequest]:
    entry = CATALOGUE.get((service, operation))
    if entry is None:
        raise CatalogueGap(f"the embedded AWS does not know what IAM authorises for {service}:{operation}: "
                           "add it to eiplane/local/iam/catalogue.py")
    return entry(params, facts)
