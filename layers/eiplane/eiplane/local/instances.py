"""What an EC2 instance does in the embedded AWS, which moto's EC2 and SSM do not do.

- Its SSM agent registers (DescribeInstanceInformation says Online) once the instance is
  running, the agent has had time to boot (virtual seconds) and its instance profile's role allows
  the agent's heartbeat (ssm:UpdateInstanceInformation, evaluated by the embedded AWS's IAM); it
  receives commands only if the role allows one of the agent's message channels. A role without
  those never registers, or never runs a command, as on AWS.
- Run Command runs for real, as the SSM agent runs it: an AWS-RunShellScript command's lines are
  written to `_script.sh` and run with `/bin/sh` (dash), with the AWS CLI pointed at the embedded
  AWS and signed with the instance's own credentials, and the validation agent on this machine's
  CPU (EIPLANE_AGENT_DEVICE=cpu). The command is InProgress while it runs; then
  Success or Failed with its exit code and the tails of its output, as GetCommandInvocation
  reports them on AWS. So the control plane's path is the same as on AWS, and a wrong
  artifact fails validation here too.
- Each instance has a root folder (EIPLANE_INSTANCE_ROOT: where the command puts /opt, /etc, /run)
  and an init system (eiplane.local.systemd: `systemctl` first on the command's PATH), so the model
  server the command installs as a unit runs as a process of its own, restarted when it crashes and
  stopped (SIGTERM) when the instance stops or terminates. It listens on a loopback port of its own
  (EIPLANE_SERVER_BIND), where the embedded load balancer reaches it: `serving_address`.
- RunInstances honours ClientToken (the same token returns the same instances) and records
  the ElasticInferenceAccelerators as accelerator associations on the instance; StartInstances
  boots a stopped instance again (its agent registers after booting, as after a launch).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eiplane.local import prefork
from eiplane.local.moto_gaps import VirtualClock

if TYPE_CHECKING:
    from eiplane.local.iam.enforcer import IamEnforcer

AGENT_BOOT_SECONDS = 30.0  # virtual: the first AwaitAgent check finds it still booting
STDOUT_LIMIT, STDERR_LIMIT = 24_000, 8_000  # what GetCommandInvocation returns at most
TRUNCATED = "--output truncated--"  # the agent keeps the start of the output, and says so


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
        # IAM, as the SSM agent meets it: its own calls are made with the instance's role.
        self.enforcer: IamEnforcer | None = None
        self.accelerators: dict[str, list[str]] = {}  # instance -> its Elastic Inference accelerators' ARNs
        self.serving_ports: dict[str, int] = {}  # instance -> the loopback port its model server binds
        self.clock_file: Path | None = None  # the instances' wall clock (EIPLANE_CLOCK_FILE), when compressed
        self._lock = threading.Lock()

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)
        # Every instance's services stop at once, as a fleet's instances would (each waits out its own
        # graceful shutdown).
        stopping = [threading.Thread(target=self._stop_services, args=(instance_id,), daemon=True,
                                     name=f"embedded-shutdown-{instance_id}") for instance_id in self.serving_ports]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join(timeout=60)
        self._scratch.cleanup()

    # --- the instance's own filesystem and services --------------------------------------------

    def root(self, instance_id: str) -> Path:
        """The instance's filesystem root (what / is on the instance)."""
        return Path(self._scratch.name) / instance_id / "fs"

    def _bin(self, instance_id: str) -> Path:
        """Tools the image has that this machine must not lend: its init system's systemctl; and its
        python3 and aws, which run one-shot commands forked from a process that has imported torch and
        the AWS CLI already (eiplane.local.prefork; services get an interpreter of their own)."""
        folder = Path(self._scratch.name) / instance_id / "bin"
        if not folder.exists():
            folder.mkdir(parents=True)
            shim = folder / "systemctl"
            shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m eiplane.local.systemd systemctl \"$@\"\n")
            shim.chmod(0o755)
            prefork.write_shims(folder)
        return folder

    def _serving_port(self, instance_id: str) -> int:
        with self._lock:
            if instance_id not in self.serving_ports:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:  # a free loopback port
                    probe.bind(("127.0.0.1", 0))
                    self.serving_ports[instance_id] = probe.getsockname()[1]
            return self.serving_ports[instance_id]

    def serving_address(self, instance_id: str, port: int) -> tuple[str, int] | None:
        """Where a connection to the instance's `port` lands: its model server's loopback port, if a
        unit of the instance serves on `port` (its ExecStart's --port) and runs. None: refused."""
        from eiplane.local import systemd

        bound = self.serving_ports.get(instance_id)
        units = self.root(instance_id) / "etc" / "systemd" / "system"
        if bound is None or not units.is_dir():
            return None
        for unit in units.glob("*.service"):
            command = (systemd.parse_unit(unit).get("ExecStart") or [""])[-1]
            found = re.search(r"--port[= ](\d+)", command)
            if found and int(found.group(1)) == port and systemd.running_pid(self.root(instance_id), unit.stem):
                return ("127.0.0.1", bound)
        return None

    def shut_down(self, instance_ids: list[str]) -> None:
        """StopInstances / TerminateInstances: the OS stops its services (SIGTERM, then SIGKILL after
        their stop timeout), while EC2 reports the instance stopping or shutting-down."""
        for instance_id in instance_ids:
            if instance_id in self.serving_ports:
                thread = threading.Thread(target=self._stop_services, args=(instance_id,), daemon=True,
                                          name=f"embedded-shutdown-{instance_id}")
                self._threads.append(thread)
                thread.start()

    def _stop_services(self, instance_id: str) -> None:
        from eiplane.local import systemd

        run = self.root(instance_id) / "run"
        for pid_file in run.glob("*.pid") if run.is_dir() else []:
            systemd.stop(self.root(instance_id), pid_file.stem, timeout_s=30)

    # --- EC2 ------------------------------------------------------------------------------

    def launched(self, instances: list[Any], accelerators: list[dict[str, Any]]) -> None:
        for instance in instances:
            self.launched_at.setdefault(instance.id, self.clock.seconds)
            if accelerators:
                self.accelerators[instance.id] = [
                    f"arn:aws:elastic-inference:{self.region}:{instance.owner_id}:elastic-inference-accelerator/"
                    f"eia-{instance.id[2:]}-{n}" for accelerator in accelerators
                    for n in range(int(accelerator.get("Count", 1)))]
            if self.enforcer is not None:
                self.enforcer.add_instance(instance_credentials(instance.id)["AWS_ACCESS_KEY_ID"], instance.id)
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
        """The agent has booted and registers: its heartbeat (ssm:UpdateInstanceInformation) is
        allowed to the instance's role. An instance without a profile has no credentials at all."""
        if instance.state != "running" or instance.id not in self.launched_at:
            return False
        if self.clock.seconds - self.launched_at[instance.id] < AGENT_BOOT_SECONDS:
            return False
        if ec2_backend.iam_instance_profile_associations.get(instance.id) is None:
            return False
        return self._agent_may(instance.id, [("ssm:UpdateInstanceInformation", "instance")])

    def receives_commands(self, instance_id: str) -> bool:
        """The agent gets Run Command messages over its control channel (ssmmessages, tried first)
        or, when that is denied, by polling Message Delivery Service (ec2messages), as agent 3.x does."""
        return (self._agent_may(instance_id, [("ssmmessages:CreateControlChannel", None),
                                              ("ssmmessages:OpenControlChannel", None)])
                or self._agent_may(instance_id, [("ec2messages:GetMessages", None),
                                                 ("ec2messages:AcknowledgeMessage", None),
                                                 ("ec2messages:SendReply", None)]))

    def _accelerator_denied(self, instance_id: str) -> str | None:
        """An instance with Elastic Inference accelerators connects to them (elastic-inference:Connect,
        as the instance's role) before any inference: denied, nothing runs."""
        if self.enforcer is None or not self.accelerators.get(instance_id):
            return None
        from eiplane.local.iam.catalogue import AuthRequest

        principal = self.enforcer.instance_principal(instance_id, self.region)
        requests = [AuthRequest("elastic-inference:Connect", arn, "accelerator") for arn in self.accelerators[instance_id]]
        if self.enforcer.allowed(principal, "elastic-inference-client", requests, self.region):
            return None
        return (f"Elastic Inference: cannot connect to {', '.join(self.accelerators[instance_id])}: "
                f"{principal.arn} is not authorized to perform: elastic-inference:Connect")

    def _agent_may(self, instance_id: str, actions: list[tuple[str, str | None]]) -> bool:
        if self.enforcer is None:
            return True
        from eiplane.local.iam.catalogue import AuthRequest

        principal = self.enforcer.instance_principal(instance_id, self.region)
        arn = f"arn:aws:ec2:{self.region}:{self.enforcer.account}:instance/{instance_id}"
        requests = [AuthRequest(action, arn if kind else "*", kind, {"ec2:SourceInstanceARN": arn})
                    for action, kind in actions]
        return self.enforcer.allowed(principal, "ssm-agent", requests, self.region)

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
        GetCommandInvocation returns, updated in place as the run goes. An agent whose role lets it
        receive no messages never gets the command: it stays Pending, as on AWS."""
        if not self.receives_commands(invocation["InstanceId"]):
            invocation.update(Status="Pending", StatusDetails="Pending", ResponseCode=-1)
            command.status = "Pending"
            return
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
                denied = self._accelerator_denied(invocation["InstanceId"])
                if denied is not None:  # the EI client connects before anything runs on the accelerator
                    code, out, err, status = 1, "", denied, "Failed"
                else:
                    code, out, err, status = self._execute(command, invocation["InstanceId"], lines, timeout)
            except Exception as exc:  # the instance itself broke: say so, as a failed invocation
                code, out, err, status = 1, "", f"embedded instance error: {exc!r}", "Failed"
            invocation.update(
                Status=status, StatusDetails=status, ResponseCode=code,
                StandardOutputContent=truncated(out, STDOUT_LIMIT), StandardErrorContent=truncated(err, STDERR_LIMIT),
                ExecutionEndDateTime=datetime.now(UTC).isoformat(),
            )
            if all(i.get("Status") == status for i in command.invocations):
                command.status = status
            self.commands_run.append((command.command_id, invocation["InstanceId"], code))

    def _execute(self, command: Any, instance_id: str, lines: list[str], timeout: int) -> tuple[int, str, str, str]:
        """As the SSM agent's runShellScript plugin runs a command (amazon-ssm-agent,
        agent/plugins/runscript): the lines joined with newlines into `_script.sh` (mode 0700) in the
        command's orchestration folder, run as `sh -c <path>`, with /bin/sh (dash, as on Ubuntu: no
        pipefail, no bash-isms), in the agent's environment plus the variables the agent adds. The
        AWS CLI finds the instance's own credentials, as it would from the instance metadata."""
        root = Path(self._scratch.name) / instance_id
        folder = root / "document" / "orchestration" / command.command_id / "awsrunShellScript" / "0.awsrunShellScript"
        folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        script = folder / "_script.sh"
        working = root / f"cwd-{next(self._ids)}"  # the agent's own working directory: nothing of the script's
        working.mkdir()
        bin_dir = str(Path(sys.executable).parent)  # the venv: the AWS CLI, and python with torch
        tools = self._bin(instance_id)  # the image's own (systemctl, and python3 and aws: see _bin)
        filesystem = self.root(instance_id)
        filesystem.mkdir(parents=True, exist_ok=True)
        env = {
            # What the agent's systemd unit gives its children; the image's own tools (systemctl) first, then
            # the venv, standing in for the image's python and AWS CLI.
            "PATH": f"{tools}:{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            # The instance's / (the command writes /opt, /etc/systemd and /run under it) and its own loopback
            # port for the model server, which the embedded load balancer connects to.
            "EIPLANE_INSTANCE_ROOT": str(filesystem),
            "EIPLANE_SERVER_BIND": f"127.0.0.1:{self._serving_port(instance_id)}",
            **({"EIPLANE_CLOCK_FILE": str(self.clock_file)} if self.clock_file else {}),
            "TMPDIR": str(root),  # keeps mktemp inside the instance's scratch folder, not this machine's /var/tmp
            # No region and no config: a command must say which region it calls, as on the instance.
            "AWS_CONFIG_FILE": str(root / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-config"),
            "AWS_ENDPOINT_URL": self.endpoint_url(), **self.credentials(instance_id),
            "EIPLANE_AGENT_PYTHON": str(tools / "python3"), "EIPLANE_AGENT_DEVICE": "cpu",
            # EIPLANE_PREFORK=off (this machine's environment) runs every command in a new interpreter.
            **({} if os.environ.get("EIPLANE_PREFORK") == "off" else {prefork.SOCKET_ENV: prefork.shared().socket_path}),
            # Every embedded instance shares this machine's few cores: torch's default of a thread per
            # core, in several instances at once, thrashes, and the throughput validation measures
            # (which capacity matching sizes with) falls tenfold. One thread each keeps it steady.
            "OMP_NUM_THREADS": "1",
            # The load test of the started server at validation: a few seconds, not the 30 an instance
            # takes (the instances share this machine's cores; the figure is this machine's anyway).
            "EIPLANE_LOADTEST_SECONDS": "1.2", "EIPLANE_LOADTEST_STEP_SECONDS": "0.3", "EIPLANE_AGENT_ITERATIONS": "5",
            # What the agent adds for every command.
            "SSM_COMMAND_ID": command.command_id, "AWS_SSM_INSTANCE_ID": instance_id,
            "AWS_SSM_REGION_NAME": self.region, "AWS_SSM_PLATFORM_NAME": "Ubuntu", "AWS_SSM_PLATFORM_VERSION": "24.04",
        }
        working_directory = (command.parameters.get("workingDirectory") or [""])[0]
        cwd = working_directory if working_directory.startswith("/") else str(working)
        # Written and started under one lock: a process another thread forks while the script is open for
        # writing holds it open until its exec, and sh's exec of the script then fails with ETXTBSY ("Text
        # file busy"). Popen returns once its child has exec'd, so no child is between fork and exec here.
        with _SPAWN_LOCK:
            script.write_text("\n".join(lines) + "\n")
            script.chmod(0o700)
            process = subprocess.Popen(["/bin/sh", "-c", str(script)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the agent kills the command's process group
            out, err = process.communicate()
            return 137, out or "", err or "", "TimedOut"
        code = process.returncode
        return code, out, err, "Success" if code == 0 else "Failed"

    def credentials(self, instance_id: str) -> dict[str, str]:
        """The instance profile's role session, as the instance metadata service hands it out."""
        return instance_credentials(instance_id)


_SPAWN_LOCK = threading.Lock()


def truncated(text: str, limit: int) -> str:
    """What the agent reports of an output: all of it if shorter than the limit, else its start."""
    return text if len(text) < limit else text[:limit - len(TRUNCATED)] + TRUNCATED


def instance_credentials(instance_id: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": f"ASIA{instance_id.removeprefix('i-').upper()[:16]:0<16}",
            "AWS_SECRET_ACCESS_KEY": "embedded", "AWS_SESSION_TOKEN": f"embedded-instance/{instance_id}"}
