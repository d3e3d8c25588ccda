"""The backend tables: instance type checks, families, descriptions, default images."""

from __future__ import annotations

import pytest

from eiplane import backends
from eiplane.backends import (
    DEFAULT_IMAGE_PARAMETERS,
    EIA_ACCELERATORS,
    accelerator_description,
    check_instance_type,
    family_names,
    family_of,
)


@pytest.mark.parametrize(("instance_type", "backend", "family"), [
    ("g4dn.metal", "gpu", "g4dn"),
    ("g5.12xlarge", "gpu", "g5"),
    ("g6.xlarge", "gpu", "g6"),
    ("g6e.48xlarge", "gpu", "g6e"),
    ("inf2.24xlarge", "inferentia", "inf2"),
    ("m5.large", "eia", "m5"),
    ("c5.9xlarge", "eia", "c5"),
])
def test_family_of_known_types(instance_type: str, backend: backends.BackendType, family: str) -> None:
    found = family_of(instance_type, backend)
    assert found is not None
    assert found.name == family
    assert check_instance_type(instance_type, backend) == instance_type


@pytest.mark.parametrize(("instance_type", "backend"), [
    ("g5.xlarge", "inferentia"),   # right type, wrong backend
    ("inf2.xlarge", "gpu"),
    ("m5.large", "gpu"),
    ("g5.metal", "gpu"),           # known family, unknown size
    ("c5.9xlarge", "gpu"),
    ("m5.9xlarge", "eia"),         # 9xlarge is a c5 size, not an m5 size
    ("g5", "gpu"),
    ("", "gpu"),
    ("g5.xlarge.extra", "gpu"),
])
def test_family_of_unknown_types(instance_type: str, backend: backends.BackendType) -> None:
    assert family_of(instance_type, backend) is None
    with pytest.raises(ValueError, match=r"^'"):
        check_instance_type(instance_type, backend)


def test_check_instance_type_messages() -> None:
    with pytest.raises(ValueError) as wrong_family:
        check_instance_type("p4d.24xlarge", "gpu")
    assert str(wrong_family.value) == "'p4d.24xlarge' is not a gpu instance type; use g4dn, g5, g6 or g6e"

    with pytest.raises(ValueError) as eia_host:
        check_instance_type("g5.xlarge", "eia")
    assert str(eia_host.value) == "'g5.xlarge' is not an Elastic Inference host (m5 / c5); use m5 or c5"

    with pytest.raises(ValueError) as inferentia:
        check_instance_type("inf1.xlarge", "inferentia")
    assert str(inferentia.value) == "'inf1.xlarge' is not an inferentia instance type; use inf2"

    with pytest.raises(ValueError) as wrong_size:
        check_instance_type("m5.9xlarge", "eia")
    assert str(wrong_size.value) == (
        "'m5.9xlarge' is not a size of m5; use one of m5.large, m5.xlarge, m5.2xlarge, m5.4xlarge, "
        "m5.8xlarge, m5.12xlarge, m5.16xlarge, m5.24xlarge")


def test_family_names() -> None:
    assert family_names("gpu") == "g4dn, g5, g6 or g6e"
    assert family_names("inferentia") == "inf2"
    assert family_names("eia") == "m5 or c5"


@pytest.mark.parametrize(("backend", "instance_type", "accelerator", "expected"), [
    ("gpu", "g4dn.xlarge", None, "NVIDIA T4 (16 GiB)"),
    ("gpu", "g5.2xlarge", None, "NVIDIA A10G (24 GiB)"),
    ("gpu", "g6.xlarge", None, "NVIDIA L4 (24 GiB)"),
    ("gpu", "g6e.xlarge", None, "NVIDIA L40S (48 GiB)"),
    ("inferentia", "inf2.xlarge", None, "AWS Inferentia2 (32 GiB per chip)"),
    ("eia", "m5.large", "eia2.medium",
     "Elastic Inference eia2.medium (8 TFLOPS FP16, 1 TFLOPS FP32, 2 GiB) on m5.large"),
    ("eia", "c5.xlarge", "eia2.xlarge",
     "Elastic Inference eia2.xlarge (32 TFLOPS FP16, 4 TFLOPS FP32, 8 GiB) on c5.xlarge"),
    ("eia", "m5.large", None, "CPU host"),
    ("gpu", "p4d.24xlarge", None, "unknown"),
])
def test_accelerator_description(backend: backends.BackendType, instance_type: str, accelerator: str | None,
                                 expected: str) -> None:
    assert accelerator_description(backend, instance_type, accelerator) == expected


def test_eia_accelerators_match_the_spec_literal() -> None:
    assert set(EIA_ACCELERATORS) == {"eia2.medium", "eia2.large", "eia2.xlarge"}


def test_default_image_parameters() -> None:
    assert set(DEFAULT_IMAGE_PARAMETERS) == {"eia", "gpu", "inferentia"}
    # As AWS documents them: DLAMI parameters end in /ami-id, Neuron DLAMI ones in /image_id.
    gpu = DEFAULT_IMAGE_PARAMETERS["gpu"]
    assert gpu.startswith("/aws/service/deeplearning/ami/x86_64/")
    assert gpu.endswith("/latest/ami-id")
    inferentia = DEFAULT_IMAGE_PARAMETERS["inferentia"]
    assert inferentia.startswith("/aws/service/neuron/dlami/")
    assert inferentia.endswith("/latest/image_id")
    assert all(p.startswith("/aws/service/") for p in DEFAULT_IMAGE_PARAMETERS.values())


def test_service_names() -> None:
    assert backends.ELASTIC_INFERENCE_SERVICE == "elastic-inference.runtime"
    assert backends.SSM_INTERFACE_SERVICES == ("ssm", "ssmmessages", "ec2messages")
