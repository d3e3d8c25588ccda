"""SummarizeFleet: every slot's outcome, and the fleet report (the execution's output)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import SummarizeFleetInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.lifecycle import summarize


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=SummarizeFleetInput)
def lambda_handler(event: SummarizeFleetInput, context: LambdaContext) -> dict[str, Any]:
    return summarize(event).model_dump(mode="json")
