"""DrainRolloutSlots: deregister a group of the rollout's slots (old ones replaced, or the new ones rolled back)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import SlotGroupInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import drain_group


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=SlotGroupInput)
def lambda_handler(event: SlotGroupInput, context: LambdaContext) -> dict[str, Any]:
    return drain_group(event).model_dump(mode="json")
