"""DeleteArtifacts: every version under the fleet's prefix, a page per invocation (with purge_artifacts)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.deletion import steps
from eiplane.models.deletion import LoopInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=LoopInput)
def lambda_handler(event: LoopInput, context: LambdaContext) -> dict[str, Any]:
    return steps.delete_artifacts(event).model_dump(mode="json")
