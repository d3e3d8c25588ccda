"""What each accelerator backend is: instance families, accelerators, images, prerequisites.

One table per backend so the spec validation, the prerequisites stage, the reports and the
docs all read the same facts (AWS-FACTS.md has the sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BackendType = Literal["eia", "gpu", "inferentia"]


@dataclass(frozen=True)
class Family:
    name: str
    sizes: tuple[str, ...]
    accelerator: str  # what the report shows for an instance of this family


_GPU_FAMILIES = (
    Family("g4dn", ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "metal"),
           "NVIDIA T4 (16 GiB)"),
    Family("g5", ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
           "NVIDIA A10G (24 GiB)"),
    Family("g6", ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
           "NVIDIA L4 (24 GiB)"),
    Family("g6e", ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
           "NVIDIA L40S (48 GiB)"),
)
_INFERENTIA_FAMILIES = (
    Family("inf2", ("xlarge", "8xlarge", "24xlarge", "48xlarge"), "AWS Inferentia2 (32 GiB per chip)"),
)
# Elastic Inference attached the accelerator to a general-purpose CPU host.
_EIA_HOST_FAMILIES = (
    Family("m5", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"),
           "CPU host"),
    Family("c5", ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge"),
           "CPU host"),
)

FAMILIES: dict[BackendType, tuple[Family, ...]] = {
    "eia": _EIA_HOST_FAMILIES,
    "gpu": _GPU_FAMILIES,
    "inferentia": _INFERENTIA_FAMILIES,
}

# FP16 TFLOPS / FP32 TFLOPS / accelerator memory, per AWS's Elastic Inference pricing page.
EIA_ACCELERATORS: dict[str, str] = {
    "eia2.medium": "8 TFLOPS FP16, 1 TFLOPS FP32, 2 GiB",
    "eia2.large": "16 TFLOPS FP16, 2 TFLOPS FP32, 4 GiB",
    "eia2.xlarge": "32 TFLOPS FP16, 4 TFLOPS FP32, 8 GiB",
}

# Public SSM parameters naming the newest image for each backend. Framework-versioned names
# are retired over time, so the spec may override them and every launch records the AMI id.
DEFAULT_IMAGE_PARAMETERS: dict[BackendType, str] = {
    "gpu": "/aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.9-ubuntu-24.04/latest/ami-id",
    "inferentia": "/aws/service/neuron/dlami/multi-framework/ubuntu-24.04/latest/image_id",
    # EI-enabled PyTorch shipped only in the (retired) DLAMI conda images; the embedded AWS
    # seeds this parameter, and real AWS never gets this far for eia.
    "eia": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
}

ELASTIC_INFERENCE_SERVICE = "elastic-inference.runtime"
# SSM Session Manager / Run Command need these when the subnet has no route to the internet.
SSM_INTERFACE_SERVICES = ("ssm", "ssmmessages", "ec2messages")

ALTERNATIVES_TO_EIA = (
    "use backend 'gpu' (g4dn, g5, g6, g6e instances with the PyTorch Deep Learning AMI) or "
    "'inferentia' (inf2 instances with the Neuron Deep Learning AMI) instead"
)


def family_names(backend: BackendType) -> str:
    names = [f.name for f in FAMILIES[backend]]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def family_of(instance_type: str, backend: BackendType) -> Family | None:
    family, _, size = instance_type.partition(".")
    for candidate in FAMILIES[backend]:
        if candidate.name == family and size in candidate.sizes:
            return candidate
    return None


def check_instance_type(instance_type: str, backend: BackendType) -> str:
    """Return the instance type, or raise ValueError saying which types this backend takes."""
    if family_of(instance_type, backend) is not None:
        return instance_type
    family = instance_type.partition(".")[0]
    known = {f.name: f for f in FAMILIES[backend]}
    if family in known:
        raise ValueError(
            f"'{instance_type}' is not a size of {family}; use one of "
            + ", ".join(f"{family}.{s}" for s in known[family].sizes)
        )
    role = {"eia": "an Elastic Inference host (m5 / c5)", "gpu": "a gpu instance type",
            "inferentia": "an inferentia instance type"}[backend]
    raise ValueError(f"'{instance_type}' is not {role}; use {family_names(backend)}")


def accelerator_description(backend: BackendType, instance_type: str, accelerator: str | None) -> str:
    if backend == "eia" and accelerator:
        return f"Elastic Inference {accelerator} ({EIA_ACCELERATORS[accelerator]}) on {instance_type}"
    family = family_of(instance_type, backend)
    return family.accelerator if family else "unknown"
