"""Upload a packed artifact to S3 and prove what landed there. No torch.

Order matters: the model files and examples first, `manifest.json` last, so a reader that
finds the manifest under a prefix finds every file it lists. Each object carries an S3
SHA256 checksum (S3 rejects a corrupted upload) and its hex sha256 in metadata; afterwards
every object is downloaded again and hashed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from eiplane.artifacts import ArtifactError
from eiplane.artifacts.manifest import MANIFEST_FILE, load_manifest, manifest_digest, sha256_file
from eiplane.aws import translate
from eiplane.errors import EiplaneError


def push(s3_client: Any, bucket: str, prefix: str, artifact_dir: str | Path) -> dict[str, Any]:
    """Upload `artifact_dir` under `s3://bucket/prefix` (e.g. "fleets/<fleet>/models/<name>/<version>/").

    Returns {"bucket", "prefix", "manifest_key", "manifest_sha256", "files": {name: sha256}}.
    ArtifactError if a local file differs from its manifest digest (nothing is uploaded then),
    or an uploaded object does not hash back to its digest; AWS errors as eiplane.aws translates them.
    """
    directory = Path(artifact_dir)
    if prefix.startswith("/") or "//" in prefix:
        raise ArtifactError(f"S3 prefix {prefix!r} must not start with '/' or contain '//'")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    manifest = load_manifest(directory)
    manifest_sha256 = manifest_digest(directory)

    problems = []
    for name, expected in sorted(manifest.files.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{name} has sha256 {actual}, the manifest says {expected}")
    if problems:
        raise ArtifactError(f"refusing to push {directory}: " + "; ".join(problems))

    uploads = [*sorted(manifest.files.items()), (MANIFEST_FILE, manifest_sha256)]
    for name, digest in uploads:
        _put(s3_client, bucket, prefix + name, directory / name, digest)
    for name, digest in uploads:
        _check(s3_client, bucket, prefix + name, name, digest)
    return {
        "bucket": bucket,
        "prefix": prefix,
        "manifest_key": prefix + MANIFEST_FILE,
        "manifest_sha256": manifest_sha256,
        "files": dict(sorted(manifest.files.items())),
    }


def _put(s3_client: Any, bucket: str, key: str, path: Path, digest: str) -> None:
    # put_object holds up to 5 GB per object, far above what an inference accelerator loads.
    try:
        with open(path, "rb") as body:
            s3_client.put_object(
                Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256", Metadata={"sha256": digest},
            )
    except ClientError as exc:
        raise _aws_error(exc, f"uploading {path.name} to s3://{bucket}/{key}") from exc


def _check(s3_client: Any, bucket: str, key: str, name: str, digest: str) -> None:
    try:
        response = s3_client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise _aws_error(exc, f"reading back {name} from s3://{bucket}/{key}") from exc
    hasher = hashlib.sha256()
    body = response["Body"]
    try:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            hasher.update(chunk)
    finally:
        body.close()
    actual = hasher.hexdigest()
    recorded = response.get("Metadata", {}).get("sha256")
    if actual != digest or recorded != digest:
        raise ArtifactError(
            f"{name} at s3://{bucket}/{key} does not match: downloaded sha256 {actual}, "
            f"metadata sha256 {recorded}, expected {digest}"
        )


def _aws_error(exc: ClientError, doing: str) -> EiplaneError:
    """The project's exception for this AWS error (AwsAccessDenied, AwsThrottled, ...), naming the file."""
    error = translate(exc)
    return type(error)(f"{error} ({doing})")
