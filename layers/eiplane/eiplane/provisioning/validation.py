"""SendValidation and AwaitValidation: the artifact is pushed to the instance and validated
by real inference there, over SSM Run Command.

The command (AWS-RunShellScript) fetches the agent and the artifact from the artifacts
bucket, checks the agent's sha256, runs the agent (which checks every artifact file's sha256
before loading anything, then compares outputs with the CPU golden outputs in each precision
and measures latency), and uploads the agent's JSON result. The control plane reads that
result from S3, never from the command's stdout (GetCommandInvocation keeps 24,000 characters).
"""

from __future__ import annotations

import json
import shlex

from botocore.exceptions import ClientError

from eiplane.aws import aws_errors, client, error_code, record_api_calls
from eiplane.errors import ArtifactRejected, ValidationFailed, ValidationInProgress
from eiplane.models.launch import AwaitValidationInput, CommandRef, SendValidationInput, ValidationOutput
from eiplane.observability import logger
from eiplane.provisioning.lifecycle import record_state
from eiplane.settings import get_settings

RUNNING = {"Pending", "InProgress", "Delayed"}
# What the DLAMIs call their PyTorch interpreters, most specific first.
PYTHONS = ("/opt/pytorch/bin/python3", "/opt/aws_neuronx_venv_pytorch*/bin/python3", "/opt/conda/bin/python3", "python3")
COMMAND_TIMEOUT_S = 1800


def result_key(request: SendValidationInput) -> str:
    execution = request.context.execution_id.rsplit(":", 1)[-1]
    return f"{request.launch.results_prefix}{execution}/slot-{request.slot.index:04d}-{request.instance.instance_id}.json"


def validation_script(request: SendValidationInput, key: str) -> list[str]:
    shared, spec = request.launch, request.spec
    bucket, region = shared.artifact.bucket, get_settings().region
    q = shlex.quote
    agent_args = " ".join([
        "--artifact artifact", f"--manifest-sha256 {q(shared.artifact.manifest_sha256)}", f"--device {q(shared.device)}",
        f"--precisions {q(','.join(spec.model.precisions))}", f"--instance-id {q(request.instance.instance_id)}",
        "--out result.json",
    ])
    # POSIX sh: the SSM agent runs these lines with `sh -c _script.sh`, and /bin/sh is dash on the
    # Ubuntu images (no pipefail, no arrays, no [[ ]]); the script uses no pipeline whose failure
    # could go unnoticed (sha256sum --check reads the one echo it is given).
    return [
        "set -eu",
        "umask 077",
        'work="$(mktemp -d "${TMPDIR:-/var/tmp}/eiplane.XXXXXX")"',
        "trap 'rm -rf \"$work\"' EXIT",
        'cd "$work"',
        f"aws s3 cp --only-show-errors --region {q(region)} {q(f's3://{bucket}/{shared.agent.key}')} agent.py",
        f"echo {q(shared.agent.sha256 + '  agent.py')} | sha256sum --check --status"
        " || { echo 'eiplane: agent digest mismatch' >&2; exit 2; }",
        f"aws s3 cp --only-show-errors --recursive --region {q(region)} {q(f's3://{bucket}/{shared.artifact.prefix}')} artifact",
        'py="${EIPLANE_AGENT_PYTHON:-}"',
        f"for candidate in {' '.join(PYTHONS)}; do "
        '[ -n "$py" ] && break; command -v "$candidate" >/dev/null 2>&1 && py="$candidate"; done',
        "status=0",
        f'"$py" agent.py {agent_args} || status=$?',
        f"aws s3 cp --only-show-errors --region {q(region)} result.json {q(f's3://{bucket}/{key}')}",
        'exit "$status"',
    ]


def send_validation(request: SendValidationInput) -> CommandRef:
    key = result_key(request)
    instance_id = request.instance.instance_id
    with record_api_calls() as calls, aws_errors():
        command = client("ssm", request.spec.region).send_command(
            InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
            Comment=f"eiplane validate {request.spec.name} slot {request.slot.index}"[:100],
            TimeoutSeconds=600,  # delivery: the agent is Online, so this is generous
            Parameters={"commands": validation_script(request, key), "executionTimeout": [str(COMMAND_TIMEOUT_S)]},
        )["Command"]
    logger.info(f"slot {request.slot.index}: validation command {command['CommandId']} sent to {instance_id}")
    return CommandRef(command_id=command["CommandId"], result_key=key, mutating_calls=calls.mutating)


def await_validation(request: AwaitValidationInput) -> ValidationOutput:
    from eiplane.artifacts.result import ValidationResult

    spec, instance_id = request.spec, request.instance.instance_id
    with record_api_calls() as calls, aws_errors():
        try:
            invocation = client("ssm", spec.region).get_command_invocation(
                CommandId=request.command.command_id, InstanceId=instance_id)
        except ClientError as exc:
            if error_code(exc) == "InvocationDoesNotExist":  # right after SendCommand
                raise ValidationInProgress(f"{request.command.command_id} not visible yet") from exc
            raise
        if invocation["Status"] in RUNNING:
            raise ValidationInProgress(f"{request.command.command_id} on {instance_id}: {invocation['Status']}")
        body = _result(request.command.result_key)
        if body is None:
            raise ValidationFailed(
                f"command {request.command.command_id} ended {invocation['Status']} "
                f"(exit {invocation.get('ResponseCode')}) without a result: "
                f"{(invocation.get('StandardErrorContent') or '').strip()[-800:]}")
        result = ValidationResult.model_validate(json.loads(body))
        summary = result.summary()
        if result.artifact.verified:
            record_state(spec, request.slot.index, instance_id, "artifact_verified")
        else:
            mismatched = sorted(name for name, f in result.artifact.files.items() if not f.ok)
            raise ArtifactRejected(f"{instance_id}: artifact digest check failed for "
                                   f"{', '.join(mismatched) or 'manifest.json'}; nothing was loaded")
        if not result.passed:
            failure = result.failure.message if result.failure else "validation did not pass"
            raise ValidationFailed(f"{instance_id}: {failure}")
        record_state(spec, request.slot.index, instance_id, "validated", {"validation": summary})
    return ValidationOutput(result_key=request.command.result_key, summary=summary, mutating_calls=calls.mutating)


def _result(key: str) -> bytes | None:
    settings = get_settings()
    try:
        return bytes(client("s3", settings.region).get_object(Bucket=settings.artifacts_bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
