"""SummarizeFleet: the fleet as it is now; the whole report to S3, its summary the execution's output."""

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
    summary = summarize(event)
    metrics.add_dimension(name="Fleet", value=summary.fleet)
    metrics.add_metric(name="InstancesInService", unit=MetricUnit.Count, value=summary.in_service)
    metrics.add_metric(name="SlotsFailed", unit=MetricUnit.Count, value=summary.failed)
    logger.info(summary.message, extra={"complete": summary.complete, "report": summary.report.uri})
    return summary.model_dump(mode="json")
