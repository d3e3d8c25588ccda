"""ReplaceUnhealthy: in-service slots the load balancer finds unhealthy, or whose instance is gone, are
taken out (deregistered, terminated, recorded failed) for the ScaleOut that follows to provision again;
instances tagged with the fleet that no slot accounts for are terminated."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import replace_unhealthy
from eiplane.models.matching import PlanInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=PlanInput)
def lambda_handler(event: PlanInput, context: LambdaContext) -> dict[str, Any]:
    return replace_unhealthy(event).model_dump(mode="json")
