"""ListFleets: the tick's time and trigger, and the fleets it matches (all registered ones, the
surge alarm's fleet, or those a manual StartExecution names)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.matching.tick import list_fleets
from eiplane.models.matching import TickRequest
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=TickRequest)
def lambda_handler(event: TickRequest, context: LambdaContext) -> dict[str, Any]:
    plan = list_fleets(event)
    logger.info(f"tick {plan.tick.id}: {len(plan.fleets)} fleet(s) ({plan.note})", extra={"fleets": plan.fleets})
    return plan.model_dump(mode="json")
