"""SendValidation: the SSM command that fetches, digest-checks and validates the artifact."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import SendValidationInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.validation import send_validation


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=SendValidationInput)
def lambda_handler(event: SendValidationInput, context: LambdaContext) -> dict[str, Any]:
    return send_validation(event).model_dump(mode="json")
