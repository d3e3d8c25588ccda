"""PutInWarmPool: a slot launched to prefill the warm pool, validated, is stopped (it costs its
EBS volume only until a scale-out starts it again)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import PutInServiceInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.lifecycle import put_in_warm_pool


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=PutInServiceInput)
def lambda_handler(event: PutInServiceInput, context: LambdaContext) -> dict[str, Any]:
    return put_in_warm_pool(event).model_dump(mode="json")
