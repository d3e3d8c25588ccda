"""Logger and metrics for every function. Service name and namespace come from template
Globals (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE); the defaults here only
matter where this module is imported before those are set (the embedded AWS's process).
No Tracer: its ~0.8 s import (X-Ray SDK) is not worth it for steps of a few AWS calls."""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "eiplane"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "eiplane"))

# Most steps publish no metric of their own; Powertools warns on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# Every state input carries the execution ARN here, so all the functions of one execution
# log under one correlation id: search it at 3 a.m. to see the whole run.
CORRELATION_ID_PATH = "context.execution_id"
