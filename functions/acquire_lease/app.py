"""AcquireLease: one tick per fleet at a time (a conditional write in the state table)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import acquire_lease
from eiplane.models.matching import FleetTick
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=FleetTick)
def lambda_handler(event: FleetTick, context: LambdaContext) -> dict[str, Any]:
    return acquire_lease(event).model_dump(mode="json")
