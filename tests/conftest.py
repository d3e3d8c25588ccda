"""Shared fixtures. Integration tests run the real ASL with the real handlers on the
embedded AWS (eiplane.local.engine); unit tests touch no AWS at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): a worker per core and one more. Integration tests spend much of
    their time waiting on processes of their own (the embedded instances' agents and model servers, the
    demo's paced requests): the extra worker keeps both cores busy meanwhile."""
    return (os.cpu_count() or 1) + 1


# The longest files, started first (seconds each took in a full run on 2 cores, 2026-12-05), so that no long
# file is left to run alone at the end while the other workers idle; pyproject's --no-loadscope-reorder keeps
# this order (xdist would otherwise start the files with the most tests first). Any order passes: this only
# balances the workers (--dist loadfile: a file runs on one worker).
LONGEST_FIRST = (
    "integration/test_cli.py",  # 170 s: the demo
    "integration/test_capacity_matching.py",  # 165 s
    "integration/test_launch.py",  # 137 s
    "integration/test_iam_coverage.py",  # 115 s
    "integration/test_local_server.py",  # 107 s
    "integration/test_serving.py",  # 103 s
    "integration/test_launch_faults.py",  # 94 s
    "integration/test_rollout.py",  # 75 s alone (-n0)
    "integration/test_delete_fleet.py",  # 50 s alone (-n0)
    "integration/test_bad_input_and_faults.py",  # 48 s
    "integration/test_seed_weaknesses.py",  # 46 s
    "unit/test_agent.py",  # 42 s
    "integration/test_state_size.py",  # 33 s
    "integration/test_step_functions_limits.py",  # 31 s
    "static/test_tools.py",  # 28 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    gone = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()]
    if gone:
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names files that are not there: {gone}")
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}

    def position(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(ROOT / "tests").as_posix(), len(rank))

    items.sort(key=position)  # stable: every file keeps its tests' order, the rest their collection order


def load_event(name: str) -> Any:
    """An event file from events/, the same ones `sam local invoke -e` and `eiplane local invoke` use."""
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def tiny_cnn_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo CNN packed once per test session (batch sizes 1 and 4 keep the agent quick)."""
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    out = tmp_path_factory.mktemp("artifact") / "tiny-cnn-1"
    pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version="1", out_dir=out, batch_sizes=(1, 4), target="any")
    return out


@pytest.fixture(scope="session")
def torchscript_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo CNN as TorchScript only, batch size 1: the quickest to validate, for tests about
    what happens around validation (capacity matching), not about its formats."""
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    out = tmp_path_factory.mktemp("artifact") / "tiny-cnn-1-torchscript"
    pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version="1", out_dir=out, batch_sizes=(1,), target="any",
         formats=("torchscript",))
    return out


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real account: fake credentials, and no profile or endpoint leaks in."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
