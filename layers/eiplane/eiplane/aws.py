"""boto3 clients, created lazily, and the one place botocore errors become eiplane errors.

Clients are cached per (service, region) and built on first use, never at import time, so
tests and the embedded AWS can point them elsewhere (AWS_ENDPOINT_URL) and `reset_clients()`
drops them. A client belongs to the credentials and endpoint it was built with, so those are
part of its key: on Lambda they never change within a sandbox (one client per service and
region), while the embedded AWS, which hosts every function in one process, gets each
function's calls made with that function's own credentials. Every call made through them is
recorded, so a step can report exactly which mutating calls it made: the demo's "zero mutating
calls on a re-run" is counted, not assumed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.loaders import Loader
from botocore.retries.standard import ThrottledRetryableChecker

from eiplane.errors import AwsAccessDenied, AwsCallFailed, AwsThrottled, AwsUnavailable, EiplaneError

# Retries belong to botocore (standard mode: exponential backoff with jitter on throttling
# and transient errors) and, above it, to the ASL Retry blocks; never to loops in our code.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    user_agent_extra="eiplane/0.1",
    connect_timeout=5,
    read_timeout=30,
)

READ_PREFIXES = ("Describe", "Get", "List", "Head", "Query", "Scan", "Lookup", "Search", "BatchGet")
# Every service's throttling codes, as botocore's own retry logic knows them (DynamoDB's
# ProvisionedThroughputExceededException, EC2's RequestLimitExceeded, S3's SlowDown, ...), plus SSM's
# TooManyUpdates: when botocore's retries are spent, the ASL retries the step with backoff.
THROTTLING_CODES = {*ThrottledRetryableChecker._THROTTLED_ERROR_CODES, "TooManyUpdates"}
TRANSIENT_CODES = {"InternalError", "InternalFailure", "InternalServerError", "ServiceUnavailable", "Unavailable",
                   "RequestTimeout", "RequestTimeoutException", "ServiceException"}
ACCESS_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                       "AuthFailure", "UnauthorizedException"}


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


@dataclass
class ApiCallLog:
    calls: list[str] = field(default_factory=list)

    @property
    def mutating(self) -> list[str]:
        return [c for c in self.calls if is_mutating(c.split(":", 1)[1])]


_active_logs: contextvars.ContextVar[tuple[ApiCallLog, ...]] = contextvars.ContextVar("eiplane_api_calls",
                                                                                     default=())


@contextlib.contextmanager
def record_api_calls() -> Iterator[ApiCallLog]:
    """Record every AWS call made through `client()` inside the block (blocks nest: a call
    is recorded by every block it is inside)."""
    log = ApiCallLog()
    token = _active_logs.set((*_active_logs.get(), log))
    try:
        yield log
    finally:
        _active_logs.reset(token)


def _record(model: Any, **_: Any) -> None:
    for log in _active_logs.get():
        log.calls.append(f"{model.service_model.service_name}:{model.name}")


def client(service: str, region: str) -> BaseClient:
    return _client(service, region, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_ENDPOINT_URL"))


class _SharedLoader(Loader):
    """botocore's data loader, shared by every session this process makes (its service models are
    read-only once loaded). boto3 adds its own data folder to a session's loader each time it wraps
    one: a folder already searched is not added again."""

    def __init__(self) -> None:
        super().__init__()
        self._search_paths = _UniquePaths(self.search_paths)


class _UniquePaths(list[str]):
    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.cache
def _data_loader() -> Loader:
    # Loading a service model (EC2's is megabytes of JSON) costs more than most calls: a sandbox that
    # builds clients for several credentials (the embedded AWS hosts every function in one process, each
    # with its own) loads each model once.
    return _SharedLoader()


@functools.cache
def _client(service: str, region: str, access_key_id: str | None, endpoint_url: str | None) -> BaseClient:
    # Built from the environment (credentials, endpoint) the key names; the key only tells them apart.
    session = botocore.session.get_session()
    session.register_component("data_loader", _data_loader())
    created = boto3.session.Session(botocore_session=session).client(service, region_name=region, config=_CONFIG)
    created.meta.events.register("before-call", _record)
    return created


def reset_clients() -> None:
    _client.cache_clear()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: ClientError) -> EiplaneError:
    """Map a botocore error onto the exception the ASL routes on."""
    code = error_code(exc)
    operation = exc.operation_name
    message = exc.response.get("Error", {}).get("Message", "")
    if code in THROTTLING_CODES:
        return AwsThrottled(f"{operation} was throttled after botocore's retries ({code})")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in TRANSIENT_CODES or status >= 500:
        return AwsUnavailable(f"{operation} failed with a server error after botocore's retries ({code or status}): "
                              f"{message}")
    if code in ACCESS_DENIED_CODES:
        return AwsAccessDenied(f"{operation} denied ({code}): {message}")
    return AwsCallFailed(f"{operation} failed ({code}): {message}")


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise translate(exc) from exc


def paginate(service_client: BaseClient, operation: str, result_key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of every page: the seed read only the first page of ListRoles."""
    for page in service_client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(result_key, [])
