"""What an EC2 instance does in the embedded AWS, which moto's EC2 and SSM do not do.

- Its SSM agent registers (DescribeInstanceInformation says Online) once the instance is
  running, its instance profile's role has AmazonSSMManagedInstanceCore, and the agent has had
  time to boot (virtual seconds). A role without SSM core never registers, as on AWS.
- Run Command runs for real: an AWS-RunShellScript command's lines run with bash in a scratch
  folder, with the AWS CLI pointed at the embedded AWS and the validation agent on this
  machine's CPU (EIPLANE_AGENT_DEVICE=cpu). The command is InProgress while it runs; then
  Success or Failed with its exit code and the tails of its output, as GetCommandInvocation
  reports them on AWS. So the control plane's path is the same as on AWS, and a wrong
  artifact fails validation here too.
- RunInstances honours ClientToken (the same token returns the same instances) and records
  the ElasticInferenceAccelerators as accelerator associations on the instance; StartInstances
  boots a stopped instance again (its agent registers after booting, as after a launch).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eiplane.local.moto_gaps import VirtualClock

SSM_CORE = "AmazonSSMManagedInstanceCore"
AGENT_BOOT_SECONDS = 30.0  # virtual: the first AwaitAgent check finds it still booting
STDOUT_LIMIT, STDERR_LIMIT = 24_000, 8_000  # what GetCommandInvocation returns at most


class EmbeddedInstances:
    def __init__(self, clock: VirtualClock, endpoint_url: Callable[[], str], region: str) -> None:
        self.clock = clock
        self.endpoint_url = endpoint_url
        self.region = region
        self.launched_at: dict[str, float] = {}
        self.commands_run: list[tuple[str, str, int]] = []  # (command id, instance, exit code)
        self._scratch = tempfile.TemporaryDirectory(prefix="eiplane-instances-")
        self._ids = itertools.count()
        self._threads: list[threading.Thread] = []

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)
        self._scratch.cleanup()

    # --- EC2 ------------------------------------------------------------------------------

    def launched(self, instances: list[Any], accelerators: list[dict[str, Any]]) -> None:
        for instance in instances:
            self.launched_at.setdefault(instance.id, self.clock.seconds)
            if accelerators and not getattr(instance, "elastic_inference_accelerator_associations", None):
                instance.elastic_inference_accelerator_associations = [
                    {"ElasticInferenceAcceleratorArn": f"arn:aws:elastic-inference:{self.region}:{instance.owner_id}:"
                                                       f"elastic-inference-accelerator/eia-{instance.id[2:]}-{n}",
                     "ElasticInferenceAcceleratorAssociationId": f"eia-assoc-{instance.id[2:]}-{n}",
                     "ElasticInferenceAcceleratorAssociationState": "associated",
                     "ElasticInferenceAcceleratorAssociationTime": datetime.now(UTC)}
                    for accelerator in accelerators for n in range(int(accelerator.get("Count", 1)))]

    def started(self, instance_ids: list[str]) -> None:
        """StartInstances: the instance boots again, and its agent registers after booting."""
        for instance_id in instance_ids:
            self.launched_at[instance_id] = self.clock.seconds

    # --- SSM agent ------------------------------------------------------------------------

    def is_online(self, ec2_backend: Any, instance: Any) -> bool:
        if instance.state != "running" or instance.id not in self.launched_at:
            return False
        if self.clock.seconds - self.launched_at[instance.id] < AGENT_BOOT_SECONDS:
            return False
        association = ec2_backend.iam_instance_profile_associations.get(instance.id)
        if association is None:
            return False
        roles = association.iam_instance_profile.roles
        return any(arn.endswith(f"/{SSM_CORE}") for role in roles for arn in role.managed_policies)

    def instance_information(self, ec2_backend: Any, instance_ids: list[str] | None) -> list[dict[str, Any]]:
        listed = []
        for reservation in ec2_backend.reservations.values():
            for instance in reservation.instances:
                if instance_ids and instance.id not in instance_ids:
                    continue
                if self.is_online(ec2_backend, instance):
                    listed.append({
                        "InstanceId": instance.id, "PingStatus": "Online", "LastPingDateTime": datetime.now(UTC),
                        "AgentVersion": "3.3.1957.0", "IsLatestVersion": True, "PlatformType": "Linux",
                        "PlatformName": "Ubuntu", "PlatformVersion": "24.04", "ResourceType": "EC2Instance",
                        "IPAddress": instance.private_ip, "ComputerName": f"ip-{str(instance.private_ip).replace('.', '-')}",
                    })
        return listed

    # --- Run Command ----------------------------------------------------------------------

    def run(self, command: Any, invocation: dict[str, Any]) -> None:
        """Start running one instance's part of a command; the invocation dict is what
        GetCommandInvocation returns, updated in place as the run goes."""
        invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
        command.status = "InProgress"
        lines = list(command.parameters.get("commands", []))
        timeout = int((command.parameters.get("executionTimeout") or ["3600"])[0])
        thread = threading.Thread(target=self._run, args=(command, invocation, lines, timeout), daemon=True,
                                  name=f"embedded-instance-{invocation['InstanceId']}")
        self._threads.append(thread)
        thread.start()

    def _run(self, command: Any, invocation: dict[str, Any], lines: list[str], timeout: int) -> None:
        with self.clock.busy():  # the outcome is in place before a waiting poll wakes up
            try:
                code, out, err, status = self._execute(invocation["InstanceId"], lines, timeout)
            except Exception as exc:  # the instance itself broke: say so, as a failed invocation
                code, out, err, status = 1, "", f"embedded instance error: {exc!r}", "Failed"
            invocation.update(
                Status=status, StatusDetails=status, ResponseCode=code,
                StandardOutputContent=out[-STDOUT_LIMIT:], StandardErrorContent=err[-STDERR_LIMIT:],
                ExecutionEndDateTime=datetime.now(UTC).isoformat(),
            )
            if all(i.get("Status") == status for i in command.invocations):
                command.status = status
            self.commands_run.append((command.command_id, invocation["InstanceId"], code))

    def _execute(self, instance_id: str, lines: list[str], timeout: int) -> tuple[int, str, str, str]:
        workdir = Path(self._scratch.name) / f"{instance_id}-{next(self._ids)}"
        workdir.mkdir()
        bin_dir = str(Path(sys.executable).parent)  # the venv: the AWS CLI, and python with torch
        env = {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url(), "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "EIPLANE_AGENT_PYTHON": sys.executable, "EIPLANE_AGENT_DEVICE": "cpu",
        }
        try:
            completed = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=workdir, env=env, capture_output=True,
                                       text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return 124, str(exc.stdout or ""), str(exc.stderr or ""), "TimedOut"
        code = completed.returncode
        return code, completed.stdout, completed.stderr, "Success" if code == 0 else "Failed"
