"""ReleaseLease: give the fleet's lease back; the fleet's outcome (its decision, a skip because
another tick held the lease, or the error a step failed with)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import release_lease
from eiplane.models.matching import ReleaseInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=ReleaseInput)
def lambda_handler(event: ReleaseInput, context: LambdaContext) -> dict[str, Any]:
    return release_lease(event).model_dump(mode="json")
