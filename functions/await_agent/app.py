"""AwaitAgent: AgentNotReady until the instance's SSM agent is Online (the ASL retries)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from eiplane.models.launch import AwaitAgentInput
from eiplane.observability import CORRELATION_ID_PATH, logger, metrics
from eiplane.provisioning.readiness import await_agent


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
@metrics.log_metrics
@event_parser(model=AwaitAgentInput)
def lambda_handler(event: AwaitAgentInput, context: LambdaContext) -> dict[str, Any]:
    return {"mutating_calls": await_agent(event)}
