"""EnsureVpcEndpoints: the EI runtime endpoint (eia) and SSM / S3 endpoints (private subnets)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.prerequisites import EnsureVpcEndpointsInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.prerequisites import stage


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=EnsureVpcEndpointsInput)
def lambda_handler(event: EnsureVpcEndpointsInput, context: LambdaContext) -> dict[str, Any]:
    return stage.ensure_endpoints(event).model_dump(mode="json")
