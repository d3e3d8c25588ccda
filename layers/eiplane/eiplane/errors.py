"""The project's exceptions.

Step Functions names a Lambda task's error after the exception's class name, so the ASL
`Retry` / `Catch` blocks in statemachines/ refer to these classes by name. Renaming one is
an interface change: tests/static/test_asl.py checks that every custom name the ASL uses is
defined here.
"""

from __future__ import annotations


class EiplaneError(Exception):
    """Base class. Every subclass is an error a state machine may route on."""


class InvalidFleetSpec(EiplaneError):
    """The execution input is not a valid fleet spec; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"fleet spec has {count} {noun}: " + "; ".join(problems))


class BackendUnavailable(EiplaneError):
    """The chosen accelerator backend cannot be used in this region or on this AWS."""


class PrerequisiteConflict(EiplaneError):
    """A resource with the name eiplane would use exists but belongs to someone else,
    or is in a state eiplane must not change (for example, in another VPC)."""


class PrerequisiteNotReady(EiplaneError):
    """A prerequisite exists but is not usable yet (endpoint pending). Retried by the ASL."""


class AwsThrottled(EiplaneError):
    """AWS kept throttling after botocore's own retries. Retried by the ASL with backoff."""


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


class FleetIncomplete(EiplaneError):
    """Some slots could not be put in service; the summary says which and why."""


# --- capacity matching ----------------------------------------------------------------------

class FleetNotRegistered(EiplaneError):
    """A tick named a fleet that no ProvisionFleet execution has applied (nothing to match)."""


class CapacityMatchingFailed(EiplaneError):
    """One or more fleets' ticks failed; the tick's summary names them and why (the others went on)."""
