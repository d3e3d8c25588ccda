"""RecordDecision: the decision in the state table and as metrics (demand, ready, desired,
reason); the fleet's surge alarm follows its ready capacity."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import record_decision
from eiplane.models.matching import RecordInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=RecordInput)
def lambda_handler(event: RecordInput, context: LambdaContext) -> dict[str, Any]:
    return record_decision(event).model_dump(mode="json")
