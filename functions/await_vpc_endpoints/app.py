"""AwaitVpcEndpoints: raises PrerequisiteNotReady while an endpoint is pending (ASL retries)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.prerequisites import AwaitVpcEndpointsInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.prerequisites import stage


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=AwaitVpcEndpointsInput)
def lambda_handler(event: AwaitVpcEndpointsInput, context: LambdaContext) -> dict[str, Any]:
    return stage.await_endpoints(event).model_dump(mode="json")
