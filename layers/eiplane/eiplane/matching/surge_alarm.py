"""The fast path for surges: one CloudWatch alarm per fleet on its load balancer's RequestCount.

The alarm goes to ALARM in the first minute whose requests exceed what the fleet's ready
instances serve; the template's EventBridge rule (source aws.cloudwatch, the alarm name's
prefix, state ALARM) then starts MatchCapacity for that fleet at once instead of waiting for
the schedule. Each tick moves the threshold to the fleet's ready capacity. It needs no alarm
action: CloudWatch sends every alarm state change to EventBridge.
"""

from __future__ import annotations

from eiplane import naming
from eiplane.aws import client
from eiplane.matching.observe import BALANCER_NAMESPACE
from eiplane.models.spec import FleetSpec
from eiplane.settings import get_settings

SURGE_ALARM = "surge-alarm"


def surge_alarm_name(fleet: str) -> str:
    return f"{get_settings().surge_alarm_prefix}{fleet}"


def upsert_surge_alarm(spec: FleetSpec, ready_rps: float, load_balancer: str) -> bool:
    """Create the alarm on the balancer (`app/<name>/<id>`), or move its threshold; True if it
    wrote (no call when unchanged)."""
    name = surge_alarm_name(spec.name)
    threshold = round(ready_rps * 60, 1)  # requests per minute (the metric is a Sum over 60 s)
    cloudwatch = client("cloudwatch", spec.region)
    current = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    dimensions = [{"Name": "LoadBalancer", "Value": load_balancer}]
    if current and float(current[0]["Threshold"]) == threshold and current[0].get("Dimensions") == dimensions:
        return False
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=(f"eiplane fast path: fleet {spec.name}'s demand is above what its ready instances "
                          f"serve; starts capacity matching at once (threshold = ready capacity, moved each tick)"),
        Namespace=BALANCER_NAMESPACE, MetricName="RequestCount", Dimensions=dimensions,
        Statistic="Sum", Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=threshold,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",  # the balancer publishes only while requests flow: a quiet fleet
        ActionsEnabled=False,  # no action: EventBridge receives every state change
        Tags=naming.as_aws_tags(naming.tags_for(SURGE_ALARM, spec)),
    )
    return True
