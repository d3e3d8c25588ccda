"""The init system of an embedded instance: enough of systemd for the units eiplane installs.

On an instance, the validation command installs the model server as a systemd unit and starts it
with `systemctl`; systemd restarts it when it crashes and stops it (SIGTERM, then SIGKILL after
TimeoutStopSec) when asked to or when the instance shuts down. An embedded instance is a folder on
this machine, so its `systemctl` is this module (a shim first on the command's PATH):

    python -m eiplane.local.systemd systemctl {daemon-reload|enable|disable|start|restart|stop|is-active|status} UNIT
    python -m eiplane.local.systemd supervise UNIT-FILE      (what `start` runs, detached)

Units are read from $EIPLANE_INSTANCE_ROOT/etc/systemd/system. What is honoured of a unit:
ExecStart (one command line, shell-style quoting), Environment= (KEY=VALUE words), WorkingDirectory,
Restart (no | on-failure | always), RestartSec. The service inherits the environment
of the command that started it (on an instance it would get systemd's clean one plus Environment=;
here that environment is the embedded instance's own: its credentials, its loopback port). Its
output goes to $EIPLANE_INSTANCE_ROOT/var/log/<unit>.log (journald's stand-in).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from eiplane.local.prefork import SOCKET_ENV

ROOT_ENV = "EIPLANE_INSTANCE_ROOT"
START_LIMIT = 5  # restarts within START_LIMIT_INTERVAL_S, then the unit fails (systemd's StartLimitBurst)
START_LIMIT_INTERVAL_S = 10.0


def instance_root() -> Path:
    root = os.environ.get(ROOT_ENV)
    if not root:
        raise SystemExit(f"systemctl (embedded): {ROOT_ENV} is not set: this shim runs only on embedded instances")
    return Path(root)


def unit_path(root: Path, unit: str) -> Path:
    name = unit if unit.endswith(".service") else f"{unit}.service"
    return root / "etc" / "systemd" / "system" / name


def pid_path(root: Path, unit: str) -> Path:
    return root / "run" / f"{unit.removesuffix('.service')}.pid"


def parse_unit(path: Path) -> dict[str, list[str]]:
    """[Service] keys (repeatable ones as lists), as systemd reads them: one KEY=VALUE a line."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def running_pid(root: Path, unit: str) -> int | None:
    path = pid_path(root, unit)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid
    return pid


def stop(root: Path, unit: str, timeout_s: float = 90.0) -> None:
    """SIGTERM to the supervisor (which passes it on and waits for the service), then SIGKILL to its
    group after the timeout, as systemd's stop does."""
    pid = running_pid(root, unit)
    if pid is None:
        return
    try:  # the supervisor alone: it passes SIGTERM on once (a second one makes uvicorn quit at once)
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and running_pid(root, unit) == pid and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pid_path(root, unit).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (another process's child) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def start(root: Path, unit: str) -> None:
    path = unit_path(root, unit)
    if not path.exists():
        raise SystemExit(f"Failed to start {path.name}: Unit {path.name} not found.")
    if running_pid(root, unit) is not None:
        return
    log = root / "var" / "log" / f"{path.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_path(root, unit).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        # Detached (a session of its own, no inherited pipes): the command that started it ends while it runs.
        # In the instance's / (systemd's default working directory), not the caller's: the command that ran
        # systemctl may remove its own folder when it ends, and a process restarted in a deleted folder fails.
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "eiplane.local.systemd", "supervise", str(path)], stdin=subprocess.DEVNULL,
            stdout=output, stderr=output, start_new_session=True, close_fds=True, cwd=root)
    pid_path(root, unit).write_text(str(supervisor.pid))


def systemctl(argv: list[str]) -> int:
    root = instance_root()
    verb, units = (argv[0] if argv else "status"), [a for a in argv[1:] if not a.startswith("-")]
    if verb in ("daemon-reload", "enable", "disable"):
        if verb == "enable" and "--now" in argv:
            for unit in units:
                start(root, unit)
        return 0
    if verb == "start":
        for unit in units:
            start(root, unit)
        return 0
    if verb == "restart":
        for unit in units:
            stop(root, unit)
            start(root, unit)
        return 0
    if verb == "stop":
        for unit in units:
            stop(root, unit)
        return 0
    if verb in ("is-active", "status"):
        active = all(running_pid(root, unit) is not None for unit in units)
        if verb == "is-active":
            print("active" if active else "inactive")
        return 0 if active else 3
    print(f"systemctl (embedded): {verb} is not supported", file=sys.stderr)
    return 1


def supervise(unit_file: Path) -> int:
    """Run the unit's ExecStart; restart it as Restart= says; pass SIGTERM on and wait for it."""
    unit = parse_unit(unit_file)
    command = shlex.split(unit["ExecStart"][-1].lstrip("-@+!:"))
    # A service's interpreter is its own process (its signals, process group and restarts are what it is
    # tested for): without the prefork socket, an embedded instance's python3 shim execs a real one.
    env = {name: value for name, value in os.environ.items() if name != SOCKET_ENV}
    for assignment in unit.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    cwd = unit["WorkingDirectory"][-1] if unit.get("WorkingDirectory") else os.environ.get(ROOT_ENV)
    restart = (unit.get("Restart") or ["no"])[-1]
    restart_s = float((unit.get("RestartSec") or ["0.1"])[-1].removesuffix("s"))
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    starts: list[float] = []
    while True:
        starts = [t for t in starts if time.monotonic() - t < START_LIMIT_INTERVAL_S] + [time.monotonic()]
        if len(starts) > START_LIMIT:
            print(f"{unit_file.name}: start request repeated too quickly, refusing to start", flush=True)
            return 1
        child = subprocess.Popen(command, env=env, cwd=cwd)
        try:
            code = child.wait(timeout=None)
        except KeyboardInterrupt:
            code = child.wait()
        if stopping:
            return 0
        print(f"{unit_file.name}: main process exited, code={code}", flush=True)
        if restart == "no" or (restart == "on-failure" and code == 0):
            return code
        time.sleep(restart_s)
        if stopping:
            return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["systemctl"]:
        return systemctl(args[1:])
    if args[:1] == ["supervise"] and len(args) == 2:
        return supervise(Path(args[1]))
    print("usage: python -m eiplane.local.systemd {systemctl ARGS | supervise UNIT-FILE}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    raise SystemExit(main())
