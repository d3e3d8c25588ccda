"""SummarizeFleet: every slot's outcome, and the fleet report (the execution's output)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import SummarizeFleetInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.lifecycle import summarize


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=SummarizeFleetInput)
def lambda_handler(event: SummarizeFleetInput, context: LambdaContext) -> dict[str, Any]:
    report = summarize(event)
    metrics.add_dimension(name="Fleet", value=report.fleet)
    metrics.add_metric(name="InstancesInService", unit=MetricUnit.Count, value=report.in_service)
    metrics.add_metric(name="SlotsFailed", unit=MetricUnit.Count, value=len(report.instances) - report.in_service)
    logger.info(report.message, extra={"complete": report.complete})
    return report.model_dump(mode="json")
