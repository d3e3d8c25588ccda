"""EnsureLoadBalancer: the fleet's internal Application Load Balancer, target group and listener."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.prerequisites import EnsureLoadBalancerInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.prerequisites import stage


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=EnsureLoadBalancerInput)
def lambda_handler(event: EnsureLoadBalancerInput, context: LambdaContext) -> dict[str, Any]:
    return stage.ensure_load_balancer(event).model_dump(mode="json")
