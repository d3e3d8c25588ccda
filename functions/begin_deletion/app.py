"""BeginDeletion: check the request, take the fleet's lease, mark it being deleted (not in a dry run)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.deletion import steps
from eiplane.models.deletion import BeginDeletionInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=BeginDeletionInput)
def lambda_handler(event: BeginDeletionInput, context: LambdaContext) -> dict[str, Any]:
    return steps.begin(event).model_dump(mode="json")
