"""AwaitRolloutBatch: BatchInProgress while the batch's ProvisionFleet runs; BatchFailed if it failed."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import AwaitBatchInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import await_batch


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=AwaitBatchInput)
def lambda_handler(event: AwaitBatchInput, context: LambdaContext) -> dict[str, Any]:
    return await_batch(event).model_dump(mode="json")
