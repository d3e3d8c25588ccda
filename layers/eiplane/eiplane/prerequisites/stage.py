"""One function per state of the prerequisites stage; the handlers call these."""

from __future__ import annotations

from eiplane import backends
from eiplane.aws import aws_errors, record_api_calls
from eiplane.models.prerequisites import (
    AwaitEndpointsOutput,
    AwaitLoadBalancerInput,
    AwaitVpcEndpointsInput,
    BackendSummary,
    EndpointsOutput,
    EnsureLoadBalancerInput,
    EnsureVpcEndpointsInput,
    FleetStepInput,
    IamOutput,
    LoadBalancerOutput,
    NetworkOutput,
    PlanOutput,
    PrerequisiteResult,
    PrerequisitesReport,
    PrerequisitesSummary,
    RecordPrerequisitesInput,
    ServingEndpoint,
)
from eiplane.models.spec import FleetSpec
from eiplane.naming import endpoint_service_name
from eiplane.prerequisites.changes import Reconciler
from eiplane.prerequisites.endpoints import check_available, elastic_inference_zones, reconcile_endpoints
from eiplane.prerequisites.iam import reconcile_iam
from eiplane.prerequisites.load_balancer import check_active, reconcile_load_balancer
from eiplane.prerequisites.network import reconcile_network
from eiplane.state import save_prerequisites


def _ei_zones(spec: FleetSpec, request: FleetStepInput, reconciler: Reconciler | None) -> set[str] | None:
    if spec.backend.type != "eia":
        return None
    zones = elastic_inference_zones(spec, request.placement)
    if reconciler is not None:
        reconciler.done("region_support", f"Elastic Inference offered in {len(zones)} of the fleet's zones",
                        endpoint_service_name(spec.region, backends.ELASTIC_INFERENCE_SERVICE),
                        reconciler.begin())
    return zones


def plan(request: FleetStepInput) -> PlanOutput:
    """Every check of every prerequisite, and no change: runs before anything is created,
    so what cannot work (EI not offered, a missing permission) fails before anything bills."""
    spec, placement = request.spec, request.placement
    reconciler = Reconciler(apply=False)
    with record_api_calls() as calls, aws_errors():
        ei_zones = _ei_zones(spec, request, reconciler)
        groups = reconcile_network(spec, placement, reconciler)
        reconcile_iam(spec, reconciler)
        reconcile_endpoints(spec, placement, groups.endpoint, ei_zones, reconciler)
        reconcile_load_balancer(spec, placement, groups.load_balancer, reconciler)
    results = reconciler.results
    return PlanOutput(
        results=results,
        mutating_calls=calls.mutating,
        dry_run=spec.dry_run,
        to_create=sum(r.outcome == "created" for r in results),
        to_repair=sum(r.outcome == "repaired" for r in results),
    )


def ensure_network(request: FleetStepInput) -> NetworkOutput:
    reconciler = Reconciler(apply=True)
    with record_api_calls() as calls, aws_errors():
        groups = reconcile_network(request.spec, request.placement, reconciler)
    assert groups.instance is not None and groups.load_balancer is not None  # applying always yields ids
    return NetworkOutput(results=reconciler.results, mutating_calls=calls.mutating,
                         instance_security_group_id=groups.instance,
                         load_balancer_security_group_id=groups.load_balancer,
                         endpoint_security_group_id=groups.endpoint)


def ensure_iam(request: FleetStepInput) -> IamOutput:
    reconciler = Reconciler(apply=True)
    with record_api_calls() as calls, aws_errors():
        role_arn, profile_arn, profile_name = reconcile_iam(request.spec, reconciler)
    assert role_arn is not None and profile_arn is not None
    return IamOutput(results=reconciler.results, mutating_calls=calls.mutating, role_arn=role_arn,
                     instance_profile_arn=profile_arn, instance_profile_name=profile_name)


def ensure_endpoints(request: EnsureVpcEndpointsInput) -> EndpointsOutput:
    reconciler = Reconciler(apply=True)
    with record_api_calls() as calls, aws_errors():
        ei_zones = _ei_zones(request.spec, request, None)
        ids = reconcile_endpoints(request.spec, request.placement, request.network.endpoint_security_group_id,
                                  ei_zones, reconciler)
    return EndpointsOutput(results=reconciler.results, mutating_calls=calls.mutating, endpoint_ids=ids)


def await_endpoints(request: AwaitVpcEndpointsInput) -> AwaitEndpointsOutput:
    with aws_errors():
        return AwaitEndpointsOutput(available=check_available(request.spec.region, request.endpoints.endpoint_ids))


def ensure_load_balancer(request: EnsureLoadBalancerInput) -> LoadBalancerOutput:
    reconciler = Reconciler(apply=True)
    with record_api_calls() as calls, aws_errors():
        ids = reconcile_load_balancer(request.spec, request.placement, request.network.load_balancer_security_group_id,
                                      reconciler)
    assert ids.load_balancer_arn and ids.target_group_arn and ids.listener_arn  # applying always yields them
    return LoadBalancerOutput(results=reconciler.results, mutating_calls=calls.mutating,
                              load_balancer_arn=ids.load_balancer_arn, target_group_arn=ids.target_group_arn,
                              listener_arn=ids.listener_arn)


def await_load_balancer(request: AwaitLoadBalancerInput) -> ServingEndpoint:
    """The endpoint once the balancer is active; PrerequisiteNotReady while it provisions (ASL retries)."""
    serving = request.spec.serving
    with aws_errors():
        dns_name = check_active(request.spec.region, request.load_balancer.load_balancer_arn)
    scheme = serving.protocol.lower()
    default_port = {"http": 80, "https": 443}[scheme]
    port = serving.effective_listener_port
    return ServingEndpoint(
        dns_name=dns_name, protocol=serving.protocol, port=port,
        url=f"{scheme}://{dns_name}" + ("" if port == default_port else f":{port}"),
        load_balancer_arn=request.load_balancer.load_balancer_arn,
        target_group_arn=request.load_balancer.target_group_arn)


def record(request: RecordPrerequisitesInput) -> PrerequisitesReport:
    spec = request.spec
    region_support = [r for r in request.plan.results if r.kind == "region_support"]
    results: list[PrerequisiteResult] = [
        *region_support, *request.network.results, *request.iam.results, *request.endpoints.results,
        *request.load_balancer.results,
    ]
    mutating = [*request.network.mutating_calls, *request.iam.mutating_calls, *request.endpoints.mutating_calls,
                *request.load_balancer.mutating_calls]
    with record_api_calls() as calls, aws_errors():
        state_record = save_prerequisites(spec.name, {
            "region": spec.region,
            "backend": spec.backend.type,
            "vpc_id": request.placement.vpc_id,
            "instance_profile_arn": request.iam.instance_profile_arn,
            "instance_security_group_id": request.network.instance_security_group_id,
            "load_balancer_security_group_id": request.network.load_balancer_security_group_id,
            "load_balancer_arn": request.endpoint.load_balancer_arn,
            "target_group_arn": request.endpoint.target_group_arn,
            "endpoint_url": request.endpoint.url,
        }, results, request.context.execution_id)
    backend = spec.backend
    accelerator = getattr(backend, "accelerator", None)
    return PrerequisitesReport(
        fleet=spec.name,
        region=spec.region,
        backend=BackendSummary(
            type=backend.type,
            instance_types=backend.instance_types,
            accelerator=backends.accelerator_description(backend.type, backend.instance_type, accelerator),
            image_parameter=backend.resolved_image_parameter,
        ),
        vpc_id=request.placement.vpc_id,
        subnet_ids=[s.subnet_id for s in request.placement.subnets],
        prerequisites=results,
        summary=PrerequisitesSummary(
            found=sum(r.outcome == "found" for r in results),
            created=sum(r.outcome == "created" for r in results),
            repaired=sum(r.outcome == "repaired" for r in results),
        ),
        mutating_calls=[*mutating, *calls.mutating],
        instance_profile_arn=request.iam.instance_profile_arn,
        instance_security_group_id=request.network.instance_security_group_id,
        endpoint=request.endpoint,
        execution_id=request.context.execution_id,
        state_record=state_record,
    )
