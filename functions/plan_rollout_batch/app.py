"""PlanRolloutBatch: the next batch (new instances to launch, old ones taken out first or retired after the bake)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import RolloutStep
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import plan_batch


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=RolloutStep)
def lambda_handler(event: RolloutStep, context: LambdaContext) -> dict[str, Any]:
    return plan_batch(event).model_dump(mode="json")
