"""The validation agent, `eiplane_agent.py`: one file that is copied alone onto an instance
and run there with the instance's Python and torch (see its docstring for the command line).

The control plane stores it in the artifacts bucket under its sha256 and the instance checks
that digest before running it, so `agent_sha256()` names exactly the code that ran.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

AGENT_PATH = Path(__file__).with_name("eiplane_agent.py")


def agent_sha256() -> str:
    return hashlib.sha256(AGENT_PATH.read_bytes()).hexdigest()


__all__ = ["AGENT_PATH", "agent_sha256"]
