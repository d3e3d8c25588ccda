"""RecordPrerequisites: the stage's report, and the fleet's record in the state table."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.prerequisites import RecordPrerequisitesInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.prerequisites import stage


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=RecordPrerequisitesInput)
def lambda_handler(event: RecordPrerequisitesInput, context: LambdaContext) -> dict[str, Any]:
    report = stage.record(event)
    metrics.add_dimension(name="Backend", value=report.backend.type)
    metrics.add_metric(name="PrerequisitesCreated", unit=MetricUnit.Count, value=report.summary.created)
    metrics.add_metric(name="PrerequisitesRepaired", unit=MetricUnit.Count, value=report.summary.repaired)
    metrics.add_metric(name="MutatingCalls", unit=MetricUnit.Count, value=len(report.mutating_calls))
    logger.info("prerequisites ready", extra={"summary": report.summary.model_dump()})
    return report.model_dump(mode="json")
