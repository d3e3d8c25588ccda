"""ValidateFleetSpec: the first state. Parses the raw execution input and resolves the VPC
and subnets; read-only, so bad input fails here with InvalidFleetSpec and nothing exists."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.prerequisites import ValidateFleetSpecInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.prerequisites.placement import validate_fleet


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=ValidateFleetSpecInput)
def lambda_handler(event: ValidateFleetSpecInput, context: LambdaContext) -> dict[str, Any]:
    return validate_fleet(event.spec).model_dump(mode="json")
