"""TerminateDrained: after the drain wait, terminate the drained instances."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import terminate_drained
from eiplane.models.matching import TerminateDrainedInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=TerminateDrainedInput)
def lambda_handler(event: TerminateDrainedInput, context: LambdaContext) -> dict[str, Any]:
    return terminate_drained(event).model_dump(mode="json")
