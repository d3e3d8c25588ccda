"""The `eiplane` command line.

  eiplane artifact pack --model PKG.MODULE:FACTORY --input 3x224x224 --name N --version V --out DIR
  eiplane artifact push DIR --fleet F [--stack-name eiplane | --bucket B | --endpoint-url URL] [--region R]
  eiplane artifact validate DIR [--device cuda] [--precisions fp32,fp16,bf16]
  eiplane fleet apply SPEC.yaml [--local | --endpoint-url URL] [--stack-name eiplane] [--region R]
  eiplane fleet rollout SPEC.yaml [--endpoint-url URL] [--stack-name eiplane] [--region R]
  eiplane fleet status NAME [--endpoint-url URL] [--stack-name eiplane] [--region R] [--json FILE]
  eiplane fleet list [--endpoint-url URL] [--stack-name eiplane] [--region R] [--json [FILE]]
  eiplane fleet delete NAME [--dry-run] [--purge-artifacts] [--yes] [--endpoint-url URL] [--stack-name eiplane]
  eiplane teardown [--dry-run] [--purge-artifacts] [--yes] [--endpoint-url URL] [--stack-name eiplane]
  eiplane invoke NAME --input REQUEST.json [--endpoint-url URL | --url URL]
  eiplane local up [--port 4566]
  eiplane local invoke FUNCTION -e events/FILE.json
  eiplane bench control-plane-cost [--sizes 0,1,4,25] [--json FILE]
  eiplane bench capacity [--set test|dev] [--setting KEY=VALUE] [--workers N] [--out out] [--legacy [--no-curves]]
  eiplane bench simulator [--days 365 | --trace FILE.csv [--column C]] [--no-cache]
  eiplane bench serving [--model tiny-cnn|deep-mlp | --artifact DIR] [--device cuda] [--json FILE]
  eiplane simulate --trace FILE.csv [--column NAME|INDEX --launch-minutes 6 --interval-minutes 5 --capacity-rps 100]
  eiplane demo [--report FILE.json]

A command that cannot do what it was asked says why in one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from botocore import exceptions as boto_errors

from eiplane.cli import commands, fleet_list
from eiplane.cli import deletion as deletion_commands
from eiplane.cli import serving as serving_commands
from eiplane.errors import EiplaneError

ENDPOINT_HELP = ("an `eiplane local up` server, e.g. http://127.0.0.1:4566; on 127.0.0.1 / localhost, what your "
                 "AWS configuration lacks is the embedded AWS's default: region us-east-1 (or --region), "
                 "credentials testing / testing")
REGION_HELP = ("the stack's region (default: your AWS configuration's; with a 127.0.0.1 / localhost "
               "--endpoint-url and none configured, us-east-1)")
STACK_HELP = ("the deployed stack to read {what} from (default: " + commands.DEFAULT_STACK_NAME + "); with "
              "--endpoint-url, needed only where that server has more than one (`eiplane local up` serves eiplane-local)")
# ClientError codes whose fix is the caller's credentials, not the request.
_CREDENTIAL_HINTS = {
    "AccessDenied": "the credentials in use are not allowed this: check their IAM permissions",
    "AccessDeniedException": "the credentials in use are not allowed this: check their IAM permissions",
    "UnauthorizedOperation": "the credentials in use are not allowed this: check their IAM permissions",
    "ExpiredToken": "the credentials have expired: refresh them (`aws sso login`, or new session credentials)",
    "ExpiredTokenException": "the credentials have expired: refresh them (`aws sso login`, or new session credentials)",
    "RequestExpired": "the request expired: check this machine's clock, or refresh the credentials",
    "InvalidClientTokenId": "AWS does not know these credentials: check AWS_ACCESS_KEY_ID / your profile",
    "UnrecognizedClientException": "AWS does not know these credentials: check AWS_ACCESS_KEY_ID / your profile",
    "InvalidAccessKeyId": "AWS does not know these credentials: check AWS_ACCESS_KEY_ID / your profile",
    "SignatureDoesNotMatch": "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY",
    "AuthFailure": "AWS does not accept these credentials: check them",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eiplane", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    fleet = sub.add_parser("fleet", help="provision fleets").add_subparsers(dest="fleet_command", required=True)
    apply = fleet.add_parser("apply", help="start ProvisionFleet for a spec and follow it")
    apply.add_argument("spec", help="fleet spec, YAML or JSON (see events/provision_fleet_*.json)")
    target = apply.add_mutually_exclusive_group()
    target.add_argument("--local", action="store_true", help="run on a fresh embedded AWS in this process")
    target.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    apply.add_argument("--stack-name", help=STACK_HELP.format(what="the ProvisionFleet state machine"))
    apply.add_argument("--state-machine-arn", help="skip the stack look-up")
    apply.add_argument("--region", help=REGION_HELP)
    apply.add_argument("--name", help="execution name (default: <fleet>-<UTC time>)")
    apply.add_argument("--dry-run", action="store_true", help="plan the prerequisites, change nothing")
    apply.add_argument("--report", help="also write the execution output as JSON here")
    apply.add_argument("--artifact", help="with --local: push this packed artifact to the fleet first")
    apply.set_defaults(handler=commands.fleet_apply)
    rollout = fleet.add_parser("rollout", help="start RolloutFleet for a spec naming a new model version and follow "
                                               "it (batches, bake, guardrails, rollback)")
    rollout.add_argument("spec", help="the fleet's spec with the new model.version (and rollout settings)")
    rollout.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    rollout.add_argument("--stack-name", help=STACK_HELP.format(what="the RolloutFleet state machine"))
    rollout.add_argument("--state-machine-arn", help="skip the stack look-up")
    rollout.add_argument("--region", help=REGION_HELP)
    rollout.add_argument("--name", help="execution name (default: rollout-<fleet>-<UTC time>)")
    rollout.add_argument("--report", help="also write the outcome as JSON here")
    rollout.set_defaults(handler=commands.fleet_rollout)
    status = fleet.add_parser("status", help="the fleet's endpoint, each slot's state, instance, target health and "
                                             "validation figures")
    invoke = sub.add_parser("invoke", help="one request through the fleet's endpoint: prints the outputs and the latency")
    listing = fleet.add_parser("list", help="every fleet: backend, region, model, desired / in service / warm, "
                                            "endpoint, estimated $ an hour at list prices")
    for command in (status, invoke):
        command.add_argument("name", help="the fleet's name")
    for command in (status, invoke, listing):  # each reads the stack's state table
        where = command.add_mutually_exclusive_group()
        where.add_argument("--local", action="store_true", help="(refused: a --local embedded AWS has no fleet; "
                                                               "use `eiplane local up` and --endpoint-url)")
        where.add_argument("--endpoint-url", help=ENDPOINT_HELP)
        command.add_argument("--stack-name", help=STACK_HELP.format(what="the fleet state table"))
        command.add_argument("--region", help=REGION_HELP)
    status.add_argument("--json", help="also write the status as JSON here")
    listing.add_argument("--json", nargs="?", const="-", metavar="FILE",
                         help="the list as JSON (README, The report): alone, on stdout instead of the table; "
                              "with FILE, also written there")
    listing.set_defaults(handler=fleet_list.fleet_list)
    status.set_defaults(handler=serving_commands.fleet_status)
    invoke.add_argument("--input", required=True, help='request body: {"inputs": [...]} (see README, model server)')
    invoke.add_argument("--url", help="send here instead of the fleet's endpoint (e.g. an instance, from inside the VPC)")
    invoke.add_argument("--timeout", type=float, default=60.0, help="seconds (SageMaker's invocation limit: 60)")
    invoke.set_defaults(handler=serving_commands.invoke)
    delete = fleet.add_parser("delete", help="start DeleteFleet: drain and terminate the fleet's instances, delete "
                                             "everything it has (its artifacts stay unless --purge-artifacts)")
    delete.add_argument("name", help="the fleet's name")
    teardown = sub.add_parser("teardown", help="delete every fleet of the stack, one after another (before `sam delete`)")
    for command in (delete, teardown):
        where = command.add_mutually_exclusive_group()
        where.add_argument("--local", action="store_true", help="(refused: a --local embedded AWS has no fleet; "
                                                               "use `eiplane local up` and --endpoint-url)")
        where.add_argument("--endpoint-url", help=ENDPOINT_HELP)
        command.add_argument("--stack-name", help=STACK_HELP.format(what="the DeleteFleet state machine"))
        command.add_argument("--state-machine-arn", help="DeleteFleet's ARN: skip the stack look-up")
        command.add_argument("--region", help=REGION_HELP)
        command.add_argument("--dry-run", action="store_true", help="list what would be deleted and kept, change nothing")
        command.add_argument("--purge-artifacts", action="store_true",
                             help="also delete every version of the fleet's artifacts (fleets/<fleet>/ in the bucket)")
        command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--report", help="also write the report as JSON here")
    delete.set_defaults(handler=deletion_commands.fleet_delete)
    teardown.set_defaults(handler=deletion_commands.teardown)

    artifact = sub.add_parser("artifact", help="model artifacts (needs the torch extra)").add_subparsers(
        dest="artifact_command", required=True)
    pack = artifact.add_parser("pack", help="TorchScript (+ torch.export) artifact with golden outputs and a manifest")
    source = pack.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="import path of a factory returning an nn.Module, e.g. mypkg.models:make_model")
    source.add_argument("--module-file", help="a saved TorchScript module (a pickled nn.Module needs --trusted)")
    pack.add_argument("--trusted", action="store_true", help="allow unpickling --module-file (runs its code)")
    pack.add_argument("--input", required=True, help="one example's shape without the batch dimension, e.g. 3x224x224")
    pack.add_argument("--name", required=True)
    pack.add_argument("--version", required=True)
    pack.add_argument("--out", required=True, help="the artifact folder to write")
    pack.add_argument("--batch-sizes", default="1,8,32", help="comma-separated; latency is measured at each")
    pack.add_argument("--target", default="any", choices=["any", "gpu", "inferentia", "eia"])
    pack.add_argument("--examples", type=int, default=8, help="example inputs kept with their golden outputs")
    pack.add_argument("--seed", type=int, default=0)
    pack.set_defaults(handler=commands.artifact_pack)
    push = artifact.add_parser("push", help="upload to the fleet's prefix in the artifacts bucket, verifying digests")
    push.add_argument("artifact_dir")
    push.add_argument("--fleet", required=True)
    where = push.add_mutually_exclusive_group()
    where.add_argument("--bucket", help="the artifacts bucket (default: the stack's ArtifactsBucketName output)")
    where.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    push.add_argument("--stack-name", help=STACK_HELP.format(what="the artifacts bucket"))
    push.add_argument("--region", help=REGION_HELP)
    push.set_defaults(handler=commands.artifact_push)
    check = artifact.add_parser("validate", help="run the validation agent here, as an instance would")
    check.add_argument("artifact_dir")
    check.add_argument("--device", default="cpu", choices=["cpu", "cuda", "neuron", "eia"])
    check.add_argument("--precisions", default="fp32,fp16,bf16")
    check.add_argument("--iterations", type=int, default=30)
    check.add_argument("--out", help="write the agent's result JSON here (default: a temporary file)")
    check.set_defaults(handler=commands.artifact_validate)

    local = sub.add_parser("local", help="the embedded AWS").add_subparsers(dest="local_command", required=True)
    up = local.add_parser("up", help="serve the deployed template on a loopback endpoint for the AWS CLI and SDKs")
    up.add_argument("--port", type=int, default=4566, help="0 picks a free port")
    up.add_argument("--region", default="us-east-1")
    up.add_argument("--ready-file", help="write the endpoint and stack outputs here as JSON once ready")
    up.add_argument("--echo-logs", action="store_true", help="print the functions' logs")
    up.set_defaults(handler=commands.local_up)
    invoke = local.add_parser("invoke", help="invoke one function with an event file (sam local invoke, no Docker)")
    invoke.add_argument("function", help="logical id from template.yaml, e.g. ValidateFleetSpecFunction")
    invoke.add_argument("-e", "--event", required=True, help="event file, e.g. events/validate_fleet_spec_gpu.json")
    invoke.add_argument("--region", default="us-east-1")
    invoke.set_defaults(handler=commands.local_invoke)

    bench = sub.add_parser("bench", help="the benchmarks in docs/").add_subparsers(dest="bench_command", required=True)
    cost = bench.add_parser("control-plane-cost", help="state transitions per provisioned instance (embedded AWS)")
    cost.add_argument("--sizes", default="0,1,4,25",
                      help="fleet sizes to run; the first is the baseline. Each embedded instance runs a model "
                           "server (about 260 MB): 100 needs about 30 GB of memory")
    cost.add_argument("--json", help="also write the measurements here")
    cost.set_defaults(handler=commands.bench_control_plane_cost)
    capacity = bench.add_parser("capacity", help="the capacity evaluation: eiplane vs the oracle and, at equal violation, "
                                                 "tuned target tracking and HPA, per family of traces")
    capacity.add_argument("--set", dest="which", choices=("test", "dev"), default="test",
                          help="test: the figures (the default); dev: for development and tuning")
    capacity.add_argument("--launch-minutes", type=int, default=6, help="L, launch-to-ready time")
    capacity.add_argument("--interval-minutes", type=int, default=5, help="N, the schedule interval")
    capacity.add_argument("--workers", type=int, default=2, help="processes")
    capacity.add_argument("--out", default="out", help="where the tables, JSON and plot go")
    capacity.add_argument("--families", help="comma-separated: only these families (default: all)")
    capacity.add_argument("--limit", type=int, help="only the first N traces of each family (a quick look, not figures)")
    capacity.add_argument("--max-minutes", type=int, help="cut every trace to its first M minutes (a quick look)")
    capacity.add_argument("--no-warm-pool", action="store_true", help="skip the flash crowds' warm-pool rows")
    capacity.add_argument("--no-plot", action="store_true", help="skip the plot")
    capacity.add_argument("--progress", action="store_true", help="a line on stderr per run")
    capacity.add_argument("--setting", action="append", metavar="KEY=VALUE",
                          help="one of eiplane's policy settings changed (repeatable; for development on --set dev)")
    capacity.add_argument("--legacy", action="store_true",
                          help="the three development traces instead: the benchmark table, warm-pool sizing and sweep")
    capacity.add_argument("--no-curves", action="store_true", help="with --legacy: skip the sweep and plot")
    capacity.set_defaults(handler=commands.bench_capacity)
    speed = bench.add_parser("simulator", help="how fast the simulator replays a trace through the eiplane policy")
    speed.add_argument("--days", type=int, default=365, help="of the generated diurnal trace (default: a year)")
    speed.add_argument("--trace", help="a demand CSV instead (as `eiplane simulate` reads it)")
    speed.add_argument("--column", help="its demand column, by header name or 0-based index")
    speed.add_argument("--no-cache", action="store_true", help="recompute every tick as the Lambda does (no ForecastCache)")
    speed.set_defaults(handler=commands.bench_simulator)
    serving = bench.add_parser("serving", help="the model server: latency vs a direct call, dynamic batching, overload")
    serving.add_argument("--artifact", help="a packed artifact directory (default: --model, packed afresh)")
    serving.add_argument("--model", choices=("tiny-cnn", "deep-mlp"), default="tiny-cnn",
                         help="tiny-cnn: the demo model; deep-mlp: a forward pass that costs the same at batch 1 and 32")
    serving.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    serving.add_argument("--seconds", type=float, default=3.0, help="length of each closed-loop run")
    serving.add_argument("--json", help="also write the measurements here")
    serving.set_defaults(handler=commands.bench_serving)

    simulate = sub.add_parser("simulate", help="replay a demand trace through the policy and the baselines")
    simulate.add_argument("--trace", required=True, help="CSV: the demand (requests/s), one row per minute; a header row "
                                                         "of any names, or none")
    simulate.add_argument("--column", help="the demand column, by header name or 0-based index (default: the only "
                                           "column, or the one column whose every value is a number)")
    simulate.add_argument("--launch-minutes", type=int, default=6)
    simulate.add_argument("--interval-minutes", type=int, default=5)
    simulate.add_argument("--drain-minutes", type=int, default=2)
    simulate.add_argument("--capacity-rps", type=float, default=100.0, help="per instance (validation measures it)")
    simulate.add_argument("--out", default="out/simulate", help="timeline-<policy>.csv and summary.json go here")
    simulate.set_defaults(handler=commands.simulate)

    demo = sub.add_parser("demo", help="the prerequisites stage for eia, gpu and inferentia, twice, on the embedded AWS")
    demo.add_argument("--report", help="write the demo's report as JSON here")
    demo.set_defaults(handler=commands.demo)
    return parser


def one_line(text: object) -> str:
    """A message's lines joined: an error is one line on stderr."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _endpoint_base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def explain(exc: BaseException) -> str | None:
    """The one line that says what went wrong and what to do, for every failure a user can
    cause (bad input, no AWS configuration, AWS saying no, nothing at --endpoint-url); None
    for anything else, which is a bug and keeps its traceback."""
    if isinstance(exc, commands.CommandError):
        return f"eiplane: {one_line(exc)}"
    if isinstance(exc, EiplaneError):  # a named error whose message says what to do
        return f"{type(exc).__name__}: {one_line(exc)}"
    if isinstance(exc, boto_errors.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Error"
        line = f"eiplane: AWS refused {exc.operation_name}: {code}: {error.get('Message') or exc}"
        hint = _CREDENTIAL_HINTS.get(code)
        return one_line(f"{line} ({hint})" if hint else line)
    if isinstance(exc, boto_errors.NoCredentialsError):
        return f"eiplane: {commands.NO_CREDENTIALS}"
    if isinstance(exc, boto_errors.NoRegionError):
        return f"eiplane: {commands.NO_REGION}"
    if isinstance(exc, boto_errors.ParamValidationError):
        return f"eiplane: invalid AWS request: {one_line(exc)}"
    if isinstance(exc, (boto_errors.EndpointConnectionError, boto_errors.ConnectTimeoutError)):
        url = str(exc.kwargs.get("endpoint_url", ""))
        base = _endpoint_base(url)
        if commands.is_loopback(url):
            return (f"eiplane: nothing is listening at {base}: start the embedded AWS there with "
                    "`eiplane local up` (it prints its endpoint), or fix --endpoint-url")
        return f"eiplane: cannot reach {base or 'AWS'}: check the network, --region and --endpoint-url"
    if isinstance(exc, boto_errors.BotoCoreError):  # ProfileNotFound, PartialCredentialsError, timeouts, ...
        return f"eiplane: {type(exc).__name__}: {one_line(exc)}"
    if isinstance(exc, OSError):  # a file the command reads or writes
        return f"eiplane: {one_line(exc)}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # what a user can cause is one line; anything else is re-raised
        line = explain(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
