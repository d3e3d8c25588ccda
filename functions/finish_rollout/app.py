"""FinishRollout: register the version the fleet serves now, close the rollout record, release the lease."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import FinishInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import finish


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=FinishInput)
def lambda_handler(event: FinishInput, context: LambdaContext) -> dict[str, Any]:
    return finish(event).model_dump(mode="json")
