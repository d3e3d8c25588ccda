"""StartRolloutBatch: start ProvisionFleet for a batch of the new version, or to restore the old (the one launch path)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import StartBatchInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import start_batch


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=StartBatchInput)
def lambda_handler(event: StartBatchInput, context: LambdaContext) -> dict[str, Any]:
    return start_batch(event).model_dump(mode="json")
