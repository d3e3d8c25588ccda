"""AwaitValidation: the agent's result, read from S3; parity and digest failures are errors."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import AwaitValidationInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.validation import await_validation


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=AwaitValidationInput)
def lambda_handler(event: AwaitValidationInput, context: LambdaContext) -> dict[str, Any]:
    return await_validation(event).model_dump(mode="json")
