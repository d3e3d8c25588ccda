"""DrainSlots: scale-in takes in-service slots out (state and tag "draining") and cancels
not-yet-ready slots no execution drives; a slot being validated is never touched."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import drain_slots
from eiplane.models.matching import PlanInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=PlanInput)
def lambda_handler(event: PlanInput, context: LambdaContext) -> dict[str, Any]:
    return drain_slots(event).model_dump(mode="json")
