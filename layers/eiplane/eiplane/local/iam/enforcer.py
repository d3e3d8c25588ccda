"""IAM, enforced on every call the embedded AWS receives from a principal of the stack.

Each principal signs with credentials of its own, as on AWS: a function with its execution role's
session (Lambda's environment), a state machine with its role's (for the Lambda invokes of its
Task states), an embedded instance with its instance profile role's (what the instance metadata
service would hand out). The operator (tests, the engine, `local up` users) signs with anything
else and is the account's administrator: nothing is checked for it.

A call from a principal is authorised like IAM authorises it: the catalogue turns it into one
request per action and resource with the condition-key values the call carries; the evaluator
decides each against the role's inline and managed policies, its permissions boundary and, for S3,
the bucket policy. Explicit denies win; any denial fails the call with the error that service
returns (UnauthorizedOperation, AccessDenied, AccessDeniedException) and AWS's message. Every
decision is recorded (`records`), which the IAM coverage tests read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import unquote
from xml.sax.saxutils import escape

from moto.core.exceptions import ServiceException
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.request import determine_request_protocol
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import get_service_model
from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.s3.models import s3_backends
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from werkzeug.exceptions import HTTPException

from eiplane.local.iam.catalogue import AuthRequest, CatalogueGap, ProfileFacts, RoleFacts, requests_for
from eiplane.local.iam.evaluator import Decision, EvaluatorError, PolicyEvaluator

# The error each service answers a denied call with: (code, HTTP status).
DENIALS = {
    "ec2": ("UnauthorizedOperation", 403),
    "iam": ("AccessDenied", 403), "sts": ("AccessDenied", 403), "cloudwatch": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "dynamodb": ("AccessDeniedException", 400), "ssm": ("AccessDeniedException", 400),
    "stepfunctions": ("AccessDeniedException", 400), "logs": ("AccessDeniedException", 400),
    "lambda": ("AccessDeniedException", 403),
}
# Requests travel over HTTPS on AWS; the embedded AWS's loopback HTTP stands in for it.
GLOBAL_CONTEXT = {"aws:SecureTransport": "true"}


@dataclass(frozen=True)
class Principal:
    kind: str  # function | state-machine | rule | instance | service (an AWS service's own principal)
    name: str  # the function's name, the state machine's ARN, the instance id
    role_name: str | None  # None: an instance with no instance profile (it has no credentials)
    arn: str  # the assumed-role session ARN its calls are made as


@dataclass(frozen=True)
class Record:
    principal: Principal
    operation: str  # service:Operation of the call ("ssm-agent" for the SSM agent's own calls)
    request: AuthRequest  # with the full context it was evaluated with
    resource_policy: dict[str, Any] | None
    allowed: bool
    denied_by: str | None


class Denied(Exception):
    def __init__(self, service: str, principal: Principal, request: AuthRequest, denied_by: str | None,
                 explicit: bool) -> None:
        action = request.action
        on = "" if request.resource == "*" else f" on resource: {request.resource}"
        if explicit:
            kind = {"boundary": "a permissions boundary", "resource": "a resource-based policy"}.get(
                denied_by or "", "an identity-based policy")
            why = f"with an explicit deny in {kind}"
        elif denied_by == "boundary":
            why = f"because no permissions boundary allows the {action} action"
        elif denied_by == "resource":
            why = f"because no resource-based policy allows the {action} action"
        else:
            why = f"because no identity-based policy allows the {action} action"
        message = f"User: {principal.arn} is not authorized to perform: {action}{on} {why}"
        if service == "ec2":
            detail = base64.b64encode(json.dumps({"action": action, "resource": request.resource,
                                                  "context": request.context}, default=str).encode()).decode()
            message = f"You are not authorized to perform this operation. {message}. Encoded authorization " \
                      f"failure message: {detail}"
        self.code, self.status = DENIALS.get(service, ("AccessDenied", 403))
        super().__init__(message)
        self.message = message


class MotoFacts:
    """The account as the catalogue needs it, read from moto's backends."""

    def __init__(self, account: str, region: str, partition: str = "aws") -> None:
        self.account, self.region, self.partition = account, region, partition

    def ec2_tags(self, resource_id: str) -> dict[str, str]:
        return dict(ec2_backends[self.account][self.region].tags.get(resource_id, {}))

    def _iam(self) -> Any:
        return iam_backends[self.account][self.partition]

    def role(self, name: str) -> RoleFacts | None:
        role = next((r for r in self._iam().roles.values() if r.name == name), None)
        if role is None:
            return None
        return RoleFacts(arn=role.arn, path=role.path, tags={t["Key"]: t["Value"] for t in role.tags or []},
                         boundary_arn=role.permissions_boundary_arn)

    def instance_profile(self, name: str) -> ProfileFacts | None:
        profile = next((p for p in self._iam().get_instance_profiles() if p.name == name), None)
        if profile is None:
            return None
        return ProfileFacts(arn=profile.arn, path=profile.path,
                            tags={t["Key"]: t["Value"] for t in profile.tags or []},
                            role_names=tuple(r.name for r in profile.roles))

    def elb_tags(self, arn: str) -> dict[str, str]:
        from moto.elbv2.models import elbv2_backends

        return dict(elbv2_backends[self.account][self.region].tagging_service.get_tag_dict_for_resource(arn))

    def alarm_tags(self, name: str) -> dict[str, str]:
        from moto.cloudwatch.models import cloudwatch_backends

        arn = f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:{name}"
        return dict(cloudwatch_backends[self.account][self.region].list_tags_for_resource(arn) or {})


def access_key_of(headers: Any) -> str | None:
    authorization = headers.get("Authorization") or headers.get("authorization") or ""
    if "Credential=" not in authorization:
        return None
    return str(authorization.split("Credential=", 1)[1].split("/", 1)[0])


def role_session_key(kind: str, name: str) -> str:
    return "ASIA" + hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:16].upper()


class IamEnforcer:
    def __init__(self, evaluator: PolicyEvaluator, account: str, partition: str = "aws") -> None:
        self.evaluator = evaluator
        self.account = account
        self.partition = partition
        self.records: list[Record] = []
        self.enabled = True  # off only in canary tests that show what enforcement catches
        self._roles: dict[str, Principal] = {}  # access key -> function or state machine
        self._instances: dict[str, str] = {}  # access key -> instance id
        self._state_machines: dict[str, str] = {}  # state machine ARN -> access key
        self.bucket_policies: dict[str, dict[str, Any]] = {}  # bucket -> its policy (the template's)
        self._lock = threading.Lock()

    # --- principals -----------------------------------------------------------------------

    def add_role_principal(self, access_key: str, kind: str, name: str, role_name: str, session: str) -> None:
        self._roles[access_key] = Principal(kind, name, role_name,
                                            f"arn:{self.partition}:sts::{self.account}:assumed-role/{role_name}/{session}")
        if kind == "state-machine":
            self._state_machines[name] = access_key

    def add_instance(self, access_key: str, instance_id: str) -> None:
        self._instances[access_key] = instance_id

    def principal(self, access_key: str | None, region: str) -> Principal | None:
        if access_key is None:
            return None
        if access_key in self._roles:
            return self._roles[access_key]
        instance_id = self._instances.get(access_key)
        if instance_id is None:
            return None  # the operator
        return self.instance_principal(instance_id, region)

    def instance_principal(self, instance_id: str, region: str) -> Principal:
        """The instance's credentials are its profile's role, as the metadata service serves it now."""
        association = ec2_backends[self.account][region].iam_instance_profile_associations.get(instance_id)
        roles = association.iam_instance_profile.roles if association is not None else []
        role_name = roles[0].name if roles else None
        arn = f"arn:{self.partition}:sts::{self.account}:assumed-role/{role_name}/{instance_id}"
        return Principal("instance", instance_id, role_name, arn)

    # --- policies -------------------------------------------------------------------------

    def policies(self, role_name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        backend = iam_backends[self.account][self.partition]
        role = next((r for r in backend.roles.values() if r.name == role_name), None)
        if role is None:
            return [], None
        identity = [{"name": name, "policy": _document(document)} for name, document in sorted(role.policies.items())]
        identity += [{"name": arn, "policy": _default_document(policy)}
                     for arn, policy in sorted(role.managed_policies.items())]
        boundary = None
        if role.permissions_boundary_arn:
            policy = backend.managed_policies.get(role.permissions_boundary_arn)
            boundary = [{"name": role.permissions_boundary_arn,
                         "policy": _default_document(policy) if policy is not None else {"Version": "2012-10-17",
                                                                                           "Statement": []}}]
        return identity, boundary

    # --- decisions ------------------------------------------------------------------------

    def authorize(self, service: str, operation: str, principal: Principal, requests: list[AuthRequest],
                  region: str, resource_policy: dict[str, Any] | None = None) -> None:
        """Raise Denied for the first request the principal's policies do not allow."""
        if principal.role_name is None:
            raise Denied(service, principal, requests[0] if requests else AuthRequest(operation, "*", None),
                         "identity", False)
        identity, boundary = self.policies(principal.role_name)
        for request in requests:
            context = {**GLOBAL_CONTEXT, "aws:PrincipalArn": _role_arn(principal, self),
                       "aws:PrincipalAccount": self.account, "aws:RequestedRegion": region, **request.context}
            policy = resource_policy if request.resource.startswith(f"arn:{self.partition}:s3:::") else None
            decision = self.evaluate(principal, request, context, identity, boundary, policy)
            with self._lock:
                self.records.append(Record(principal, operation, AuthRequest(
                    request.action, request.resource, request.resource_type, context), policy, decision.allowed,
                    decision.denied_by))
            if not decision.allowed:
                raise Denied(service, principal, request, decision.denied_by, decision.decision == "ExplicitlyDenied")

    def evaluate(self, principal: Principal, request: AuthRequest, context: dict[str, Any],
                 identity: list[dict[str, Any]], boundary: list[dict[str, Any]] | None,
                 resource_policy: dict[str, Any] | None) -> Decision:
        return self.evaluator.authorize(
            principal=principal.arn, account=self.account, action=request.action, resource=request.resource,
            resource_type=request.resource_type, context=context, identity=identity, boundary=boundary,
            resource_policy=resource_policy)

    def service_allowed(self, service: str, action: str, resource: str, resource_type: str,
                        resource_policy: dict[str, Any] | None, context: dict[str, Any]) -> bool:
        """For what an AWS service does as its service principal (EventBridge publishing to a topic): allowed only by
        the resource's own policy. Not in `records`, which hold the stack's principals' calls."""
        if not self.enabled:
            return True
        principal = Principal("service", service, None, service)
        decision = self.evaluate(principal, AuthRequest(action, resource, resource_type),
                                 {**GLOBAL_CONTEXT, **context}, [], None, resource_policy)
        return decision.allowed

    def allowed(self, principal: Principal, operation: str, requests: list[AuthRequest], region: str) -> bool:
        """For calls the embedded AWS makes on a principal's behalf (the SSM agent's own)."""
        if not self.enabled:
            return True
        try:
            self.authorize("ssm", operation, principal, requests, region)
        except Denied:
            return False
        return True

    # --- moto ------------------------------------------------------------------------------

    def check_call(self, response: BaseResponse) -> tuple[int, dict[str, str], Any] | None:
        """For a non-S3 call: None if it may go on, else the error response it gets."""
        if not self.enabled:
            return None
        principal = self.principal(access_key_of(response.headers), response.region)
        if principal is None:
            return None
        service = response.boto3_service_name
        operation = response._get_action()
        try:
            params = _api_params(response, service, operation)
            requests = requests_for(service, operation, params, MotoFacts(self.account, response.region, self.partition))
            self.authorize(service, f"{service}:{operation}", principal, requests, response.region)
        except Denied as denied:
            return _error_response(response, denied.code, denied.message, denied.status)
        except (CatalogueGap, EvaluatorError) as gap:  # the embedded AWS's own gap: loud, never a pass
            return _error_response(response, "EmbeddedAwsIamError", str(gap), 400)
        return None

    def check_s3(self, response: Any, bucket: str | None, key: str | None) -> None:
        if not self.enabled:
            return
        principal = self.principal(access_key_of(response.headers), response.region)
        if principal is None:
            return
        facts_account = response.current_account
        backend = s3_backends[facts_account][self.partition]
        action = _s3_action(response, bucket, key)
        requests = _s3_requests(self.partition, action, bucket, key, response)
        policy = self.bucket_policies.get(bucket or "")
        if policy is None and bucket and bucket in backend.buckets and backend.buckets[bucket].policy:
            policy = _document(backend.buckets[bucket].policy)
        try:
            self.authorize("s3", f"s3:{action}", principal, requests, response.region, policy)
            if action == "GetObject" and bucket and key and not _object_exists(backend, bucket, key):
                # A missing key answers 404 only to a caller who may list the bucket; else 403.
                self.authorize("s3", "s3:GetObject", principal, [AuthRequest(
                    "s3:ListBucket", f"arn:{self.partition}:s3:::{bucket}", "bucket", {"s3:prefix": key})],
                    response.region, policy)
        except Denied as denied:
            raise _S3AccessDenied(denied.message) from None

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        enforcer = self
        original_call_action = BaseResponse.call_action
        original_s3 = BaseResponse._authenticate_and_authorize_s3_action
        original_invoke = lambda_eval_utils.execute_lambda_function_integration
        original_client = lambda_eval_utils.boto_client_for
        machine = threading.local()

        def call_action(self: BaseResponse) -> Any:
            denial = enforcer.check_call(self)
            return denial if denial is not None else original_call_action(self)

        def authorize_s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
            enforcer.check_s3(self, bucket_name, key_name)
            original_s3(self, bucket_name=bucket_name, key_name=key_name)

        def execute_lambda(env: Any, parameters: dict[str, Any], region: str, state_credentials: Any) -> None:
            # A Task's Lambda invoke is made with the state machine's role.
            machine.arn = env.states.context_object.context_object_data["StateMachine"]["Id"]
            try:
                original_invoke(env=env, parameters=parameters, region=region, state_credentials=state_credentials)
            finally:
                machine.arn = None

        clients: dict[tuple[str, str, str | None], Any] = {}
        clients_lock = threading.Lock()

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            # One client per state machine's role (moto builds one for every Task; building one costs more
            # than the call): it signs with that role's key, as Step Functions calls with the machine's role.
            key = enforcer._state_machines.get(getattr(machine, "arn", None) or "")
            with clients_lock:
                if (region, service, key) not in clients:
                    created = original_client(region=region, service=service, state_credentials=state_credentials)
                    if key is not None:
                        created._request_signer._credentials = _Credentials(key)
                    clients[(region, service, key)] = created
                return clients[(region, service, key)]

        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.object(BaseResponse, "call_action", call_action))
            stack.enter_context(mock.patch.object(BaseResponse, "_authenticate_and_authorize_s3_action", authorize_s3))
            stack.enter_context(mock.patch.object(lambda_eval_utils, "execute_lambda_function_integration",
                                                  execute_lambda))
            stack.enter_context(mock.patch.object(lambda_eval_utils, "boto_client_for", boto_client_for))
            yield


@dataclass(frozen=True)
class _Credentials:
    access_key: str
    secret_key: str = "embedded"  # noqa: S105 (the embedded AWS checks no signature)
    token: str = "embedded-state-machine"  # noqa: S105
    method: str = "embedded"

    def get_frozen_credentials(self) -> _Credentials:
        return self


def _role_arn(principal: Principal, enforcer: IamEnforcer) -> str:
    return f"arn:{enforcer.partition}:iam::{enforcer.account}:role/{principal.role_name}"


def _document(document: Any) -> dict[str, Any]:
    if isinstance(document, bytes):
        document = document.decode()
    if isinstance(document, str):
        try:
            return dict(json.loads(document))
        except ValueError:
            return dict(json.loads(unquote(document)))
    return dict(document)


def _default_document(policy: Any) -> dict[str, Any]:
    version = next((v for v in policy.versions if v.is_default), policy.versions[-1])
    return _document(version.document)


def _api_params(response: BaseResponse, service: str, operation: str) -> dict[str, Any]:
    if service == "lambda" and operation == "Invoke":
        return {"FunctionName": unquote(response.path.rsplit("/", 2)[-2])}
    params = getattr(response, "params", None)
    if getattr(response, "automated_parameter_parsing", False) and params:
        return dict(params)
    service_model = get_service_model(response.boto3_service_name)
    operation_model = service_model.operation_model(operation)
    request = response.normalized_request
    protocol = determine_request_protocol(service_model, request.content_type)
    parser = PROTOCOL_PARSERS[protocol](operation_model, map_type=response.PROTOCOL_PARSER_MAP_TYPE)
    parsed = parser.parse({"method": request.method, "values": request.values, "headers": request.headers,
                           "body": request.data, "url_path": request.path,
                           "url_params": getattr(response, "uri_match", None) or {}})
    return dict(parsed)


class _S3AccessDenied(HTTPException):
    """S3's 403 AccessDenied, as S3 writes it (moto would serialise an S3 error as a 400)."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__()
        self.description = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
                            f"<Message>{escape(message)}</Message></Error>")

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", "application/xml")]

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.description or ""


class _EmbeddedAwsError(ServiceException):
    """An error the embedded AWS answers with, serialised in the calling service's protocol."""


# moto warns when an error code is not among the service model's modelled shapes; AccessDenied and
# its kin seldom are (AWS returns them from its front end, not the service), and the answer is
# serialised as AWS's is anyway. A denied call says so itself: the warning is noise.
warnings.filterwarnings("ignore", message=r"Exception\(_EmbeddedAwsError\) with code ", category=UserWarning)


def _error_response(response: BaseResponse, code: str, message: str, status: int) -> tuple[int, dict[str, str], Any]:
    _, headers, body = response.serialized(ActionResult(_EmbeddedAwsError(code, message)))
    headers["status"] = str(status)
    return status, headers, body


def _s3_action(response: Any, bucket: str | None, key: str | None) -> str:
    action = str(response.data.get("Action") or ("ListAllMyBuckets" if not bucket else "ListBucket"))
    return {"HeadBucket": "ListBucket"}.get(action, action)  # HeadBucket is authorised as s3:ListBucket


def _s3_requests(partition: str, action: str, bucket: str | None, key: str | None, response: Any) -> list[AuthRequest]:
    if not bucket:
        return [AuthRequest(f"s3:{action}", "*", None)]
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    if not key:
        context: dict[str, Any] = {}
        if action in ("ListBucket", "ListBucketVersions"):  # both take the s3:prefix condition
            for name, param in (("s3:prefix", "prefix"), ("s3:delimiter", "delimiter"), ("s3:max-keys", "max-keys")):
                value = response.querystring.get(param)
                if value:
                    context[name] = value[0] if isinstance(value, list) else value
        return [AuthRequest(f"s3:{action}", bucket_arn, "bucket", context)]
    requests = [AuthRequest(f"s3:{action}", f"{bucket_arn}/{key}", "object")]
    source = response.headers.get("x-amz-copy-source")
    if source:  # a copy reads its source too
        source = unquote(source).lstrip("/").split("?", 1)[0]
        requests.append(AuthRequest("s3:GetObject", f"arn:{partition}:s3:::{source}", "object"))
    if action == "PutObject" and response.headers.get("x-amz-tagging"):
        requests.append(AuthRequest("s3:PutObjectTagging", f"{bucket_arn}/{key}", "object"))
    return requests


def _object_exists(backend: Any, bucket: str, key: str) -> bool:
    try:
        return backend.get_object(bucket, key) is not None
    except Exception:  # moto raises its own missing-key errors
        return False
