"""The project's exceptions.

Step Functions names a Lambda task's error after the exception's class name, so the ASL
`Retry` / `Catch` blocks in statemachines/ refer to these classes by name. Renaming one is
an interface change: tests/static/test_asl.py checks that every custom name the ASL uses is
defined here.
"""

from __future__ import annotations

# A Lambda task's error reaches Step Functions as its error payload (errorMessage, errorType,
# requestId, stackTrace), JSON-encoded, and that whole payload is the failure's cause, which AWS
# limits to 32,768 characters (the embedded AWS fails the execution with States.Runtime beyond
# it). JSON escaping makes one character of a message up to 12 of the cause (an astral character
# is two \uXXXX escapes), and the stack trace needs its room too, so a message is bounded by its
# JSON-escaped length, at a quarter of the limit: no error class can produce a cause AWS refuses,
# whatever input, AWS answer or bug put into its message.
MAX_MESSAGE_CHARS = 8_192
CUT_MARKER = " [... message cut: {n} more characters]"
# InvalidFleetSpec: at most this many problems are listed (then "and N more"), each at most this
# long, and the list stops early rather than grow past its budget.
MAX_LISTED_PROBLEMS = 20
MAX_PROBLEM_CHARS = 600
PROBLEMS_BUDGET_CHARS = 6_000


def json_chars(character: str) -> int:
    """How many characters `character` takes in a JSON string (json.dumps, ensure_ascii)."""
    code = ord(character)
    if character in '"\\\b\f\n\r\t':
        return 2
    if 0x20 <= code < 0x7F:
        return 1
    return 12 if code > 0xFFFF else 6


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS, marker: str = CUT_MARKER) -> str:
    """`text` if its JSON-escaped form fits `limit`; else its longest prefix that fits together with
    the marker (ASCII), which says how many characters were cut. Reads at most `limit` characters."""
    if len(text) * 12 <= limit:
        return text
    room = limit - len(marker.format(n=len(text)))
    used, cut = 0, None
    for index, character in enumerate(text):
        used += json_chars(character)
        if cut is None and used > room:
            cut = index
        if used > limit:
            assert cut is not None
            return text[:cut] + marker.format(n=len(text) - cut)
    return text


class EiplaneError(Exception):
    """Base class. Every subclass is an error a state machine may route on. Its message is bounded
    (see MAX_MESSAGE_CHARS)."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (bounded(args[0]),)
        super().__init__(*args)

    def __str__(self) -> str:
        return bounded(super().__str__())


class InvalidFleetSpec(EiplaneError):
    """The execution input is not a valid fleet spec; the message lists every problem (up to
    MAX_LISTED_PROBLEMS, then how many more), each named by its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = [bounded(str(p), MAX_PROBLEM_CHARS, " [...]") for p in problems]
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        listed: list[str] = []
        used = 0
        for problem in self.problems[:MAX_LISTED_PROBLEMS]:
            cost = sum(json_chars(c) for c in problem) + 2
            if listed and used + cost > PROBLEMS_BUDGET_CHARS:
                break
            listed.append(problem)
            used += cost
        rest = f"; and {count - len(listed)} more" if count > len(listed) else ""
        super().__init__(f"fleet spec has {count} {noun}: " + "; ".join(listed) + rest)


class BackendUnavailable(EiplaneError):
    """The chosen accelerator backend cannot be used in this region or on this AWS."""


class PrerequisiteConflict(EiplaneError):
    """A resource with the name eiplane would use exists but belongs to someone else,
    or is in a state eiplane must not change (for example, in another VPC)."""


class PrerequisiteNotReady(EiplaneError):
    """A prerequisite exists but is not usable yet (endpoint pending). Retried by the ASL."""


class AwsThrottled(EiplaneError):
    """AWS kept throttling after botocore's own retries. Retried by the ASL with backoff."""


class AwsUnavailable(EiplaneError):
    """AWS answered with a server error (5xx), or its answer was lost, through botocore's own
    retries. Retried by the ASL: every step is safe to run again."""


class AwsAccessDenied(EiplaneError):
    """The function's role may not make a call it needs; the message names the action."""


class AwsCallFailed(EiplaneError):
    """Any other AWS error, with the operation and AWS error code in the message."""


# --- provisioning: launch, agent, validation ------------------------------------------------

class ArtifactNotFound(EiplaneError):
    """The fleet's model artifact (manifest.json) is not in the artifacts bucket: push it first."""


class ImageNotFound(EiplaneError):
    """The backend's SSM image parameter does not exist (AWS retires framework-versioned names)."""


class QuotaExceeded(EiplaneError):
    """An account quota stops the launch (InstanceLimitExceeded / VcpuLimitExceeded). Not
    retried: the message names the quota to raise."""


class NoCapacity(EiplaneError):
    """No allowed instance type had capacity in any of the fleet's zones."""


class InstanceProfileNotReady(EiplaneError):
    """EC2 does not see the new instance profile yet (IAM propagation). Retried briefly."""


class AgentNotReady(EiplaneError):
    """The instance's SSM agent is not Online yet. Retried until the registration deadline."""


class ValidationInProgress(EiplaneError):
    """The validation command is still running. Retried until the validation deadline."""


class ArtifactRejected(EiplaneError):
    """The instance found an artifact file whose sha256 differs from the manifest: not loaded."""


class ValidationFailed(EiplaneError):
    """The artifact ran on the instance but did not compute what the model computes on a CPU
    (or did not run): the message gives the numbers."""


class TargetNotHealthy(EiplaneError):
    """The instance is registered with the fleet's target group but its health checks have not
    passed yet (the model server is loading, or the checks need more passes). Retried by the ASL."""


class TargetNeverHealthy(EiplaneError):
    """The instance's target did not turn healthy by serving.healthy_deadline_s: the slot fails and
    its instance is deregistered and terminated."""


class TargetsStillDraining(EiplaneError):
    """Scale-in waited out the deregistration delay, but the load balancer still reports a target
    draining (its requests are still in flight). Retried by the ASL before anything is terminated."""


class PlanConflict(EiplaneError):
    """Another execution reserved a slot while this one planned: the ASL runs the plan again."""


class FleetConverging(EiplaneError):
    """Slots this fleet counts on are still being provisioned by another running execution (the
    same spec started twice, or a scale-out): retried by the ASL until they settle, so the summary
    says what the fleet is, not what it was while they were on their way."""


class FleetIncomplete(EiplaneError):
    """Some slots could not be put in service; the summary says which and why."""


# --- capacity matching ----------------------------------------------------------------------

class FleetNotRegistered(EiplaneError):
    """A tick named a fleet that no ProvisionFleet execution has applied (nothing to match)."""


class CapacityMatchingFailed(EiplaneError):
    """One or more fleets' ticks failed; the tick's summary names them and why (the others went on)."""


# --- rollouts -------------------------------------------------------------------------------

class RolloutRequired(EiplaneError):
    """ProvisionFleet was given a model version other than the one the fleet's instances serve, outside
    a rollout: it launches nothing (two versions would serve side by side); RolloutFleet replaces them."""


class NothingToRollOut(EiplaneError):
    """RolloutFleet was given the version the fleet already serves, or a fleet it cannot roll (not
    registered, no instance in service): nothing is changed."""


class RolloutBlocked(EiplaneError):
    """No batch can proceed without taking the fleet below rollout.min_healthy_percent (max_surge 0 and
    too few instances in service to take one out): the rollout rolls back."""


class BatchInProgress(EiplaneError):
    """The rollout's ProvisionFleet execution (a batch, or the restore of the old version) is still
    running. Retried by the ASL: the wait."""


class BatchFailed(EiplaneError):
    """A batch's instances could not all be launched, validated and put in service (the new version
    failed validation, no capacity, never healthy): the rollout rolls back."""


class RolledBack(EiplaneError):
    """RolloutFleet's end when it did not roll out (its Fail state): the cause says what rolled it back
    (BatchFailed, GuardrailFired, RolloutBlocked, or a step's error) and which version serves at what size."""


class GuardrailFired(EiplaneError):
    """During a batch's bake the target group's 5xx rate or p99 latency went beyond the spec's limits,
    or an alarm the spec names went into ALARM: the rollout rolls back."""


# --- deletion -------------------------------------------------------------------------------

class InvalidDeleteRequest(EiplaneError):
    """DeleteFleet's input is not {"fleet": NAME, "dry_run": bool, "purge_artifacts": bool}: nothing is changed."""


class FleetBusy(EiplaneError):
    """Another running execution holds the fleet (a capacity-matching tick's lease, a ProvisionFleet
    execution still launching, a rollout or a deletion): DeleteFleet and RolloutFleet retry, then fail
    with this name, having changed nothing. ProvisionFleet refuses a fleet being deleted with it too."""


class InstancesNotTerminated(EiplaneError):
    """Some of the fleet's instances are still shutting down: retried by the ASL (the wait)."""


class ResourceStillInUse(EiplaneError):
    """AWS refused a deletion because something still uses the resource (a target group its load balancer
    still lists, a security group an instance's or an endpoint's network interface still holds:
    DependencyViolation); retried by the ASL until it is released."""
