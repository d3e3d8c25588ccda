"""Helpers shared by test_artifacts.py and test_agent.py: a packed tiny CNN, and the ways the
tests damage an artifact. torch is a dev dependency (`make` installs it): where it is missing
these tests fail, they are not skipped."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY_SHAPE = (3, 32, 32)


def pack_tiny_cnn(out_dir: Path, **options: Any) -> Any:
    """The demo CNN packed into `out_dir`."""
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    return pack(tiny_cnn(), TINY_SHAPE, name="tiny-cnn", version="1", out_dir=out_dir, **options)


def copy_artifact(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0xFF
    path.write_bytes(bytes(data))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rewrite_manifest(artifact: Path, change: Callable[[dict[str, Any]], None]) -> str:
    """Edit manifest.json in place the way pack writes it; returns its new sha256."""
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n")
    return sha256(path)
