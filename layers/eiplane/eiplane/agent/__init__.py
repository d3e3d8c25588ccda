"""What runs on an instance: the validation agent, `eiplane_agent.py`, and the model server,
`model_server.py`, with the wheels of its dependencies (the instance bundle).

The agent is one file run with the instance's Python and torch (see its docstring for the command
line). The control plane stores it in the artifacts bucket under its sha256 and the instance checks
that digest before running it, so `agent_sha256()` names exactly the code that ran.

The model server needs uvicorn and starlette, and an instance has no route to a package index: the
bundle carries their pure-Python wheels, pinned with hashes in `server-requirements.txt` and
downloaded by `make install` into `wheels/` (gitignored). `bundle_files()` names every file of the
bundle and `bundle_manifest()` their digests, for the control plane to publish them content-addressed;
`INSTALL_SNIPPET` is the instance's side: check each file, unzip the wheels, run the server.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

AGENT_DIR = Path(__file__).parent
AGENT_PATH = AGENT_DIR / "eiplane_agent.py"
SERVER_PATH = AGENT_DIR / "model_server.py"
REQUIREMENTS_PATH = AGENT_DIR / "server-requirements.txt"
WHEELS_DIR = AGENT_DIR / "wheels"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


class BundleIncomplete(OSError):
    """A wheel the requirements name is missing from wheels/ or is not the pinned file."""


def agent_sha256() -> str:
    return hashlib.sha256(AGENT_PATH.read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    from eiplane.agent.eiplane_agent import sha256_file  # the digest the instance computes, by the same code

    return sha256_file(path)


def _normalized(name: str) -> str:
    # A wheel's file name spells the project name with underscores (PEP 427 / PEP 503 normalization).
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_project(path: Path) -> tuple[str, str]:
    # {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
    parts = path.name.split("-")
    return _normalized(parts[0]), parts[1] if len(parts) > 1 else ""


def pinned_wheels() -> list[tuple[str, str, set[str]]]:
    """(name, version, allowed sha256s) of every requirement in server-requirements.txt."""
    # Continuation lines joined first: each requirement is `name==version \` then its `--hash=` lines.
    text = REQUIREMENTS_PATH.read_text().replace("\\\n", " ")
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        hashes = set(_HASH.findall(line))
        if not match or not hashes:
            raise ValueError(f"{REQUIREMENTS_PATH.name}: {line!r} is not `name==version --hash=sha256:...`")
        pins.append((match.group(1), match.group(2), hashes))
    return pins


def bundle_files() -> dict[str, Path]:
    """Relative name on the instance -> local path, for every file the instance needs."""
    files = {AGENT_PATH.name: AGENT_PATH, SERVER_PATH.name: SERVER_PATH, REQUIREMENTS_PATH.name: REQUIREMENTS_PATH}
    present = sorted(WHEELS_DIR.glob("*.whl")) if WHEELS_DIR.is_dir() else []
    for name, version, hashes in pinned_wheels():
        candidates = [p for p in present if _wheel_project(p) == (_normalized(name), version)]
        if not candidates:
            raise BundleIncomplete(f"the wheel of {name}=={version} is not in {WHEELS_DIR}: run `make install` "
                                   f"(it downloads the wheels {REQUIREMENTS_PATH.name} pins)")
        matching = [p for p in candidates if _sha256(p) in hashes]
        if not matching:
            raise BundleIncomplete(f"{candidates[0].name} in {WHEELS_DIR} is not the file {REQUIREMENTS_PATH.name} pins "
                                   f"(sha256 differs): run `make install` again to download it afresh")
        files[f"wheels/{matching[0].name}"] = matching[0]
    return files


def bundle_manifest() -> dict[str, Any]:
    """{"files": {relative name: sha256}}: what the control plane publishes and the instance checks."""
    return {"files": {name: _sha256(path) for name, path in sorted(bundle_files().items())}}


def bundle_sha256sums(manifest: dict[str, Any] | None = None) -> str:
    """The bundle's digests as `sha256sum -c` reads them, the standard input of INSTALL_SNIPPET's function."""
    files = (manifest or bundle_manifest())["files"]
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))


# POSIX sh (dash on Ubuntu, bash on AL2023), for the instance's script to embed. The digests must come
# from the script itself (the control plane writes them in), never from a file beside the ones they check.
INSTALL_SNIPPET = r"""
# eiplane_install_bundle DIR PY: DIR holds the bundle's files (eiplane_agent.py, model_server.py,
# server-requirements.txt, wheels/*.whl); standard input holds their digests, one "<sha256>  <name>" line
# each (eiplane.agent.bundle_sha256sums()). Every file is checked before anything runs (status 2 if one
# differs or is missing), then each listed wheel is unzipped into DIR/site with PY's own zipfile module:
# the wheels are pure Python, so no pip and no index are needed. Serve with
#   PYTHONPATH="$DIR/site" "$PY" "$DIR/model_server.py" serve --artifact ... --manifest-sha256 ...
eiplane_install_bundle() {
    eib_dir=$1
    eib_py=$2
    eib_sums=$(cat)
    if [ -z "$eib_sums" ]; then
        echo "eiplane: no bundle digests given" >&2
        return 2
    fi
    if ! printf '%s\n' "$eib_sums" | (cd "$eib_dir" && sha256sum --check --strict --quiet -); then
        echo "eiplane: a file of the model server bundle in $eib_dir does not match its digest" >&2
        return 2
    fi
    rm -rf "$eib_dir/site" && mkdir -p "$eib_dir/site" || return 1
    # One interpreter for every wheel (a start of PY per wheel costs more than the unzipping); the names
    # are the checked ones above, read from the same digest lines.
    printf '%s\n' "$eib_sums" | (cd "$eib_dir" && "$eib_py" -c "$EIPLANE_UNZIP_WHEELS_PY") || return 1
}
EIPLANE_UNZIP_WHEELS_PY='import sys, zipfile
for line in sys.stdin:
    name = line.strip().partition("  ")[2]
    if name.startswith("wheels/") and name.endswith(".whl"):
        with zipfile.ZipFile(name) as wheel:
            wheel.extractall("site")'
"""


__all__ = [
    "AGENT_PATH",
    "INSTALL_SNIPPET",
    "REQUIREMENTS_PATH",
    "SERVER_PATH",
    "WHEELS_DIR",
    "BundleIncomplete",
    "agent_sha256",
    "bundle_files",
    "bundle_manifest",
    "bundle_sha256sums",
    "pinned_wheels",
]
