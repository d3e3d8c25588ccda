"""LaunchInstance: one slot's instance, where there is capacity (next zone, then next type)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import SlotInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.launch import launch_instance


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=SlotInput)
def lambda_handler(event: SlotInput, context: LambdaContext) -> dict[str, Any]:
    return launch_instance(event).model_dump(mode="json")
