"""The embedded instances' one-shot commands, forked from a process that has imported torch and the AWS
CLI (eiplane.local.prefork): each must behave as it would in a new interpreter, and die with its shim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from eiplane.local import prefork, systemd


@pytest.fixture
def shims(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    prefork.write_shims(folder)
    return folder


def command_env(shims: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{shims}:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
            prefork.SOCKET_ENV: prefork.shared().socket_path, **extra}


def sh(shims: Path, script: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script], cwd=cwd, env=command_env(shims, **extra), capture_output=True,
                          text=True, timeout=120)


def wait_until(condition: object, what: str, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, what
        time.sleep(0.02)  # the polling interval, not the wait: the loop ends on the condition


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_script_runs_as_in_a_new_interpreter(shims: Path, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "shadow.py").write_text("WHERE = 'pythonpath'\n")
    (tmp_path / "job.py").write_text(
        "import json, os, sys, torch\n"
        "import shadow\n"
        "data = sys.stdin.read()\n"
        "print(json.dumps({'argv': sys.argv, 'cwd': os.getcwd(), 'path0': sys.path[0], 'shadow': shadow.WHERE,\n"
        "                  'stdin': data, 'name': __name__, 'only': os.environ.get('ONLY'),\n"
        "                  'leaked': 'PYTEST_CURRENT_TEST' in os.environ, 'torch': 'torch' in sys.modules}))\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(5)\n")
    work = tmp_path / "work"
    work.mkdir()
    done = sh(shims, f'echo input | python3 {tmp_path}/job.py one "two words"', work, ONLY="set",
              PYTHONPATH=str(tmp_path / "lib"))
    assert done.returncode == 5, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"argv": [f"{tmp_path}/job.py", "one", "two words"], "cwd": str(work), "path0": str(tmp_path),
                    "shadow": "pythonpath", "stdin": "input\n", "name": "__main__", "only": "set", "leaked": False,
                    "torch": True}  # forked: torch was imported already
    assert done.stderr == "to stderr\n"


def test_c_code_exit_codes_and_uncaught_exceptions(shims: Path, tmp_path: Path) -> None:
    done = sh(shims, "python3 -c 'import sys; print(sys.argv, sorted(k for k in globals() if not k.startswith(\"__\")))' a b; "
                     "echo rc=$?; python3 -c 'raise ValueError(\"boom\")'; echo rc=$?; "
                     "python3 -c 'import sys; sys.exit(\"a message\")'; echo rc=$?", tmp_path)
    assert done.stdout.splitlines() == ["['-c', 'a', 'b'] ['sys']", "rc=0", "rc=1", "rc=1"]
    assert "ValueError: boom" in done.stderr and "a message" in done.stderr


def test_the_aws_cli_runs_forked(shims: Path, tmp_path: Path) -> None:
    done = sh(shims, "aws --version", tmp_path, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    assert done.returncode == 0 and done.stdout.startswith("aws-cli/"), done.stderr


def test_a_killed_shim_takes_its_command_and_the_command_s_children_with_it(shims: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    code = (f"import os, subprocess, time\nchild = subprocess.Popen(['sleep', '600'])\n"
            f"open({str(marker)!r} + '.partial', 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            f"os.rename({str(marker)!r} + '.partial', {str(marker)!r})\ntime.sleep(600)\n")
    shim = subprocess.Popen([str(shims / "python3"), "-c", code], env=command_env(shims), start_new_session=True)
    wait_until(marker.exists, "the command did not start")
    forked, child = (int(pid) for pid in marker.read_text().split())
    assert forked != shim.pid, "the command ran in a new interpreter, not forked"
    assert alive(forked) and alive(child)
    os.killpg(shim.pid, signal.SIGKILL)  # as the agent's timeout kills a command's process group
    shim.wait(timeout=60)
    wait_until(lambda: not alive(forked), "the forked command outlived its shim")
    wait_until(lambda: not alive(child), "the command's child outlived its shim")


def test_sigterm_to_the_shim_reaches_the_command(shims: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    code = (f"import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
            f"open({str(marker)!r}, 'w').write('ready')\ntime.sleep(600)\n")
    shim = subprocess.Popen([str(shims / "python3"), "-c", code], env=command_env(shims))
    wait_until(marker.exists, "the command did not start")
    shim.send_signal(signal.SIGTERM)
    assert shim.wait(timeout=60) == 7


@pytest.mark.parametrize("command, extra", [
    ("python3 -I -c 'import sys; print(\"torch\" in sys.modules)'", {}),  # an option the fork does not emulate
    ("python3 -c 'import sys; print(\"torch\" in sys.modules)'", {"OMP_NUM_THREADS": "4"}),  # read at import
])
def test_what_a_fork_cannot_be_runs_in_a_new_interpreter(shims: Path, tmp_path: Path, command: str,
                                                          extra: dict[str, str]) -> None:
    done = sh(shims, command, tmp_path, **extra)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr


def test_a_service_gets_an_interpreter_of_its_own(shims: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = tmp_path / "probe.service"
    unit.write_text("[Service]\n"
                    f"ExecStart={shims}/python3 -c 'import sys; sys.exit(10 if \"torch\" in sys.modules else 11)'\n"
                    "Restart=no\n")
    for name, value in command_env(shims).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(systemd.ROOT_ENV, str(tmp_path))
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert systemd.supervise(unit) == 11
    finally:
        signal.signal(signal.SIGTERM, handler)  # supervise() installs its own
