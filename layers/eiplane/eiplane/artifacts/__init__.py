"""Model artifacts: a directory holding a packed model (TorchScript and, where the model
exports, a torch.export `.pt2`), deterministic example inputs with their golden outputs, and
`manifest.json`, which lists every file with its sha256.

Modules: `manifest` (the manifest model, no torch), `pack` (torch, imported inside its
functions), `push` (to S3, no torch), `result` (the validation agent's result, no torch),
`demo_model` (a tiny CNN, torch). Nothing here imports torch at import time, so Lambda code
can use the manifest and result models.
"""

from __future__ import annotations

from eiplane.errors import EiplaneError


class ArtifactError(EiplaneError):
    """An artifact cannot be packed, is inconsistent with its manifest, or failed verification."""


__all__ = ["ArtifactError"]
