"""SendValidation and AwaitValidation: the artifact is pushed to the instance and validated
by real inference there, over SSM Run Command.

The command (AWS-RunShellScript) fetches the instance bundle (agent, model server, wheels) and the
artifact from the artifacts bucket, checks every bundle file's sha256 against the digests written
into the command, runs the agent (which checks every artifact file's sha256 before loading anything,
then compares outputs with the CPU golden outputs in each precision and measures latency), then
installs exactly those files as the model server's systemd unit, starts it, waits for its /ping and
load-tests it through its own HTTP path (the per-instance capacity at serving.latency_p99_ms), and
uploads the result. The control plane reads that
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


SERVICE = "eiplane-model-server"
READY_TIMEOUT_S = 600  # load + warm-up of a large model on a cold volume
# How long the load test at validation may take (`model_server.py loadtest`): rising rates, a few
# seconds each, until p99 passes serving.latency_p99_ms. EIPLANE_LOADTEST_SECONDS and
# EIPLANE_LOADTEST_STEP_SECONDS override them (the embedded instances, which share this machine's
# cores, measure briefly).
# Timed forward passes per batch size, precision and format. EIPLANE_AGENT_ITERATIONS overrides it (the
# embedded instances, which share this machine's cores, time fewer).
AGENT_ITERATIONS = 30
LOADTEST_SECONDS = 30
LOADTEST_STEP_SECONDS = 2  # each rate held this long
# Waits for the started server's /ping, on the instance itself (the image's python, no curl needed).
WAIT_READY_PY = (
    "import sys,time,urllib.request as u\n"
    "end=time.monotonic()+float(sys.argv[2])\n"
    "while True:\n"
    " try:\n"
    "  if u.urlopen(sys.argv[1],timeout=2).status==200: sys.exit(0)\n"
    " except Exception: pass\n"
    " if time.monotonic()>end: sys.exit(1)\n"
    " time.sleep(0.5)\n"
)
# Adds the server's readiness and load test to the agent's result: {"serving": {...}}.
MERGE_PY = (
    "import json,sys\n"
    "r=json.load(open(sys.argv[1]))\n"
    "s={'ready':sys.argv[3]=='0','url':sys.argv[4],'latency_objective_ms':float(sys.argv[5])}\n"
    "try:\n"
    " t=json.load(open(sys.argv[2]))\n"
    " s.update(capacity_rps=t.get('capacity_rps'),latency_p50_ms=t.get('latency_p50_ms'),"
    "latency_p99_ms=t.get('latency_p99_ms'),steps=t.get('steps',[]))\n"
    "except Exception as e: s['error']=s.get('error') or ('no load test: %s' % e)\n"
    "if sys.argv[3]!='0': s['error']='the model server did not answer /ping 200 within %s s; its log: %s' % "
    "(sys.argv[6], open(sys.argv[7]).read()[-1500:] if sys.argv[7] else '')\n"
    "r['serving']=s\n"
    "json.dump(r,open(sys.argv[1],'w'))\n"
)


def unit_file(request: SendValidationInput, python_path: str) -> str:
    """The systemd unit of the model server: started after validation, from exactly the files
    validated; restarted when it crashes; stopped with SIGTERM (it finishes its requests first)."""
    spec, shared = request.spec, request.launch
    serving = spec.serving
    q = shlex.quote
    args = [
        "serve", "--artifact", "$DEST/artifact", "--manifest-sha256", shared.artifact.manifest_sha256,
        "--device", shared.device, "--precision", spec.model.precisions[0], "--port", str(serving.port),
        "--max-queue-delay-ms", f"{serving.max_queue_delay_ms:g}", "--max-queue", str(serving.max_queue),
        "--fleet", spec.name, "--instance-id", request.instance.instance_id, "--region", spec.region,
    ]
    if serving.max_batch_size is not None:
        args += ["--max-batch-size", str(serving.max_batch_size)]
    command = " ".join([python_path, "$DEST/model_server.py", *(q(a) if not a.startswith("$") else a for a in args)])
    return "\n".join([
        "[Unit]",
        f"Description=eiplane model server of fleet {spec.name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "[Service]",
        "Type=simple",
        "WorkingDirectory=$DEST",
        "Environment=PYTHONPATH=$DEST/site PYTHONUNBUFFERED=1",
        f"ExecStart={command}",
        "Restart=always",
        "RestartSec=2",
        # SIGTERM: the server stops taking requests and finishes the ones it has (the load balancer has
        # drained it first); then SIGKILL, after the deregistration delay has long passed.
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={serving.deregistration_delay_s + 30}",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=full",
        "ProtectHome=yes",
        "[Install]",
        "WantedBy=multi-user.target",
    ])


def validation_script(request: SendValidationInput, key: str) -> list[str]:
    from eiplane.agent import INSTALL_SNIPPET

    shared, spec = request.launch, request.spec
    bucket, region = shared.artifact.bucket, get_settings().region
    q = shlex.quote
    agent_args = " ".join([
        "--artifact artifact", f"--manifest-sha256 {q(shared.artifact.manifest_sha256)}", f"--device {q(shared.device)}",
        f"--precisions {q(','.join(spec.model.precisions))}", f"--instance-id {q(request.instance.instance_id)}",
        f'--iterations "${{EIPLANE_AGENT_ITERATIONS:-{AGENT_ITERATIONS}}}"', "--out result.json",
    ])
    serving = spec.serving
    objective = f"{serving.latency_p99_ms:g}"
    # POSIX sh: the SSM agent runs these lines with `sh -c _script.sh`, and /bin/sh is dash on the
    # Ubuntu images (no pipefail, no arrays, no [[ ]]); the script uses no pipeline whose failure
    # could go unnoticed (sha256sum --check reads the digests it is given on its standard input).
    return [
        "set -eu",
        "umask 077",  # the service runs as root: nothing it reads need be readable by anyone else
        # The instance's / (EIPLANE_INSTANCE_ROOT is set on embedded instances only: a folder of this machine).
        'root="${EIPLANE_INSTANCE_ROOT:-}"',
        'work="$(mktemp -d "${TMPDIR:-/var/tmp}/eiplane.XXXXXX")"',
        "trap 'rm -rf \"$work\"' EXIT",
        'cd "$work"',
        *INSTALL_SNIPPET.strip().splitlines(),
        f"aws s3 cp --only-show-errors --recursive --region {q(region)} {q(f's3://{bucket}/{shared.agent.prefix}')} bundle",
        'py="${EIPLANE_AGENT_PYTHON:-}"',
        f"for candidate in {' '.join(PYTHONS)}; do "
        '[ -n "$py" ] && break; command -v "$candidate" >/dev/null 2>&1 && py="$candidate"; done',
        # Every file of the bundle against the digests written here, before anything of it runs.
        'eiplane_install_bundle bundle "$py" <<EIPLANE_SUMS || { echo "eiplane: agent digest mismatch" >&2; exit 2; }',
        *shared.agent.sha256sums.strip().splitlines(),
        "EIPLANE_SUMS",
        f"aws s3 cp --only-show-errors --recursive --region {q(region)} {q(f's3://{bucket}/{shared.artifact.prefix}')} artifact",
        "status=0",
        f'"$py" bundle/eiplane_agent.py {agent_args} || status=$?',
        'if [ "$status" -eq 0 ]; then',
        # What was validated is what serves: the same files, moved into place, then the service (re)started.
        f'  DEST="$root/opt/eiplane/{spec.name}"',
        '  rm -rf "$DEST.new" && mkdir -p "$DEST.new"',
        '  cp -R bundle/. "$DEST.new/" && cp -R artifact "$DEST.new/artifact"',
        '  rm -rf "$DEST.old"; if [ -d "$DEST" ]; then mv "$DEST" "$DEST.old"; fi; mv "$DEST.new" "$DEST"',
        '  mkdir -p "$root/etc/systemd/system"',
        f'  cat > "$root/etc/systemd/system/{SERVICE}.service" <<EIPLANE_UNIT',
        *unit_file(request, "$py").splitlines(),
        "EIPLANE_UNIT",
        "  systemctl daemon-reload",
        f"  systemctl enable {SERVICE} >/dev/null 2>&1 || true",
        f"  systemctl restart {SERVICE}",
        f'  bind="${{EIPLANE_SERVER_BIND:-127.0.0.1:{serving.port}}}"',
        '  ready=0',
        f'  "$py" -c {q(WAIT_READY_PY)} "http://$bind/ping" {READY_TIMEOUT_S} || ready=$?',
        '  if [ "$ready" -eq 0 ]; then',
        f'    PYTHONPATH="$DEST/site" "$py" "$DEST/model_server.py" loadtest --url "http://$bind" --artifact "$DEST/artifact"'
        f' --latency-objective-ms {objective} --max-seconds "${{EIPLANE_LOADTEST_SECONDS:-{LOADTEST_SECONDS}}}"'
        f' --step-seconds "${{EIPLANE_LOADTEST_STEP_SECONDS:-{LOADTEST_STEP_SECONDS}}}"'
        ' --out loadtest.json >loadtest.log 2>&1 || true',
        '  else',
        "    status=5",
        '  fi',
        f'  log="$root/var/log/{SERVICE}.log"; [ -f "$log" ] || log=""',
        f'  "$py" -c {q(MERGE_PY)} result.json loadtest.json "$ready" "http://$bind" {objective} {READY_TIMEOUT_S} "$log"',
        "fi",
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
        if result.serving is None or not result.serving.ready:
            why = result.serving.error if result.serving else "the command started no model server"
            raise ValidationFailed(f"{instance_id}: validated, but the model server does not serve: {why}")
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
