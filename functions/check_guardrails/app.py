"""CheckGuardrails: one check of a batch's bake (5xx rate, p99 latency, the spec's alarms)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.rollout import GuardrailInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.rollout import check_guardrails


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=GuardrailInput)
def lambda_handler(event: GuardrailInput, context: LambdaContext) -> dict[str, Any]:
    return check_guardrails(event).model_dump(mode="json")
