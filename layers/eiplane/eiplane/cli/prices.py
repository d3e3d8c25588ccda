"""AWS list prices (USD, on demand) that `eiplane fleet list` estimates each fleet's hourly cost from.

Operator tooling, like the rest of eiplane.cli: no function imports it (tests/static/test_layer.py). The
table is data, dated, with the pages it comes from; `eiplane.cli.costs` does the arithmetic. A type,
accelerator or region missing here is reported as unknown, never priced at zero: add it from the
pages below (and move AS_OF) rather than guess.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RegionPrices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instances: dict[str, float] = Field(description="EC2 on-demand, Linux, shared tenancy: $ per instance-hour")
    eia_accelerators: dict[str, float] = Field(default_factory=dict, description="Elastic Inference: $ per hour")
    interface_endpoint_az_hour: float | None = Field(description="PrivateLink interface endpoint: $ per endpoint per AZ-hour")
    load_balancer_hour: float | None = Field(description="Application Load Balancer: $ per hour, LCUs apart")


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: str = Field(pattern=r"^\d{4}-\d{2}(-\d{2})?$", description="when the pages said these prices")
    currency: str = "USD"
    sources: dict[str, str]
    notes: tuple[str, ...]
    not_included: tuple[str, ...]
    regions: dict[str, RegionPrices]


# us-east-1 (N. Virginia). us-east-2 and us-west-2 listed the same price for every type here.
_G4DN = {"g4dn.xlarge": 0.526, "g4dn.2xlarge": 0.752, "g4dn.4xlarge": 1.204, "g4dn.8xlarge": 2.176,
         "g4dn.12xlarge": 3.912, "g4dn.16xlarge": 4.352, "g4dn.metal": 7.824}
_G5 = {"g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.8xlarge": 2.448, "g5.12xlarge": 5.672,
       "g5.16xlarge": 4.096, "g5.24xlarge": 8.144, "g5.48xlarge": 16.288}
_G6 = {"g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6.4xlarge": 1.3232, "g6.8xlarge": 2.0144, "g6.12xlarge": 4.6016,
       "g6.16xlarge": 3.3968, "g6.24xlarge": 6.6752, "g6.48xlarge": 13.3504}
_G6E = {"g6e.xlarge": 1.861, "g6e.2xlarge": 2.24208, "g6e.4xlarge": 3.00424, "g6e.8xlarge": 4.52856,
        "g6e.12xlarge": 10.49264, "g6e.16xlarge": 7.57719, "g6e.24xlarge": 15.06559, "g6e.48xlarge": 30.13118}
_INF2 = {"inf2.xlarge": 0.7582, "inf2.8xlarge": 1.9679, "inf2.24xlarge": 6.4906, "inf2.48xlarge": 12.9813}
# The Elastic Inference hosts.
_M5 = {"m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "m5.4xlarge": 0.768, "m5.8xlarge": 1.536,
       "m5.12xlarge": 2.304, "m5.16xlarge": 3.072, "m5.24xlarge": 4.608}
_C5 = {"c5.large": 0.085, "c5.xlarge": 0.17, "c5.2xlarge": 0.34, "c5.4xlarge": 0.68, "c5.9xlarge": 1.53,
       "c5.12xlarge": 2.04, "c5.18xlarge": 3.06, "c5.24xlarge": 4.08}
# The last prices AWS published, before Elastic Inference closed to new customers (2023-04-15).
_EIA2 = {"eia2.medium": 0.12, "eia2.large": 0.24, "eia2.xlarge": 0.34}

_US = RegionPrices(instances={**_G4DN, **_G5, **_G6, **_G6E, **_INF2, **_M5, **_C5}, eia_accelerators=_EIA2,
                   interface_endpoint_az_hour=0.01, load_balancer_hour=0.0225)

PRICES = PriceTable(
    as_of="2025-01",
    sources={
        "instances": "https://aws.amazon.com/ec2/pricing/on-demand/",
        "eia_accelerators": "https://aws.amazon.com/machine-learning/elastic-inference/pricing/",
        "interface_endpoint_az_hour": "https://aws.amazon.com/privatelink/pricing/",
        "load_balancer_hour": "https://aws.amazon.com/elasticloadbalancing/pricing/",
    },
    notes=(
        "Written down from the pages above as they stood in January 2025, not fetched by eiplane (the machine "
        "that wrote this table could not reach them): check them before quoting a figure to anyone.",
        "us-east-2 and us-west-2 listed the same prices as us-east-1 for every type, accelerator and item here.",
        "eu-west-1: m5, c5, the interface endpoint and the load balancer are as listed; g4dn and g5 are recalled "
        "to about 2%; g6, g6e, inf2 and Elastic Inference are left out (not certain of a price, or of the type "
        "being offered there), so a fleet of them shows as unknown.",
        "Elastic Inference prices are the last AWS published; it takes no new customers (2023-04-15) and the eia "
        "backend stops at BackendUnavailable on AWS, so they price embedded-AWS fleets only.",
    ),
    not_included=(
        "EBS volumes (each instance's root volume: all that a stopped warm-pool instance bills)",
        "load balancer LCUs ($0.008 per LCU-hour in these regions)",
        "data processing and transfer (interface endpoints $0.01 per GB, between zones, out of AWS)",
        "the control plane (Step Functions, Lambda, DynamoDB, CloudWatch, S3)",
        "discounts (Savings Plans, reserved instances, Spot): these are on-demand list prices",
    ),
    regions={
        "us-east-1": _US,
        "us-east-2": _US,
        "us-west-2": _US,
        "eu-west-1": RegionPrices(
            instances={
                "g4dn.xlarge": 0.587, "g4dn.2xlarge": 0.838, "g4dn.4xlarge": 1.343, "g4dn.8xlarge": 2.428,
                "g4dn.12xlarge": 4.366, "g4dn.16xlarge": 4.857, "g4dn.metal": 8.731,
                "g5.xlarge": 1.123, "g5.2xlarge": 1.353, "g5.4xlarge": 1.813, "g5.8xlarge": 2.733,
                "g5.12xlarge": 6.332, "g5.16xlarge": 4.573, "g5.24xlarge": 9.092, "g5.48xlarge": 18.184,
                "m5.large": 0.107, "m5.xlarge": 0.214, "m5.2xlarge": 0.428, "m5.4xlarge": 0.856, "m5.8xlarge": 1.712,
                "m5.12xlarge": 2.568, "m5.16xlarge": 3.424, "m5.24xlarge": 5.136,
                "c5.large": 0.096, "c5.xlarge": 0.192, "c5.2xlarge": 0.384, "c5.4xlarge": 0.768, "c5.9xlarge": 1.728,
                "c5.12xlarge": 2.304, "c5.18xlarge": 3.456, "c5.24xlarge": 4.608,
            },
            interface_endpoint_az_hour=0.011, load_balancer_hour=0.0252),
    },
)
