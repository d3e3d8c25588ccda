"""StartRollout: check the new spec and the fleet, take the fleet's lease, write the rollout record."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import StartRolloutInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import start_rollout


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=StartRolloutInput)
def lambda_handler(event: StartRolloutInput, context: LambdaContext) -> dict[str, Any]:
    return start_rollout(event).model_dump(mode="json")
