"""ObserveAndPlan: the fleet's demand from CloudWatch and its slots, through the pure policy
(eiplane.capacity.plan): the decision and its reason."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import observe_and_plan
from eiplane.models.matching import FleetTick
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=FleetTick)
def lambda_handler(event: FleetTick, context: LambdaContext) -> dict[str, Any]:
    return observe_and_plan(event).model_dump(mode="json")
