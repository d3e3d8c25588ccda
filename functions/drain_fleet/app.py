"""DrainFleet: deregister the fleet's targets; the ASL's Wait is the drain."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.deletion import steps
from eiplane.models.deletion import DeletionStepInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=DeletionStepInput)
def lambda_handler(event: DeletionStepInput, context: LambdaContext) -> dict[str, Any]:
    return steps.drain(event).model_dump(mode="json")
