"""TerminateSlot: the compensation for any failed slot step: terminate, record why."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import TerminateSlotInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.lifecycle import terminate_slot


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=TerminateSlotInput)
def lambda_handler(event: TerminateSlotInput, context: LambdaContext) -> dict[str, Any]:
    return terminate_slot(event).model_dump(mode="json")
