"""SummarizeTick: every fleet's outcome; CapacityMatchingFailed if any fleet's tick failed (the
others went on), so a failed fleet fails the execution where an operator looks."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import summarize_tick
from eiplane.models.matching import SummarizeTickInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=SummarizeTickInput)
def lambda_handler(event: SummarizeTickInput, context: LambdaContext) -> dict[str, Any]:
    summary = summarize_tick(event)
    logger.info(summary.message)
    return summary.model_dump(mode="json")
