"""PlanLaunch: resolve the image, read the artifact manifest, publish the agent, list the slots to provision."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import PlanLaunchInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.plan import plan_launch


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=PlanLaunchInput)
def lambda_handler(event: PlanLaunchInput, context: LambdaContext) -> dict[str, Any]:
    return plan_launch(event).model_dump(mode="json")
