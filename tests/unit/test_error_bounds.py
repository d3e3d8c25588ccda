"""Every eiplane error's message is bounded, so that no failure's cause exceeds the 32,768 characters
AWS allows (the Lambda error payload, JSON-encoded, is the cause; see eiplane.errors)."""

from __future__ import annotations

import json
import traceback

import pytest

from eiplane import errors
from eiplane.errors import MAX_MESSAGE_CHARS, EiplaneError, InvalidFleetSpec, bounded

AWS_MAX_CAUSE_CHARS = 32_768
CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, EiplaneError)]


def lambda_error_payload(exc: Exception) -> str:
    """As the Python runtime reports an unhandled exception (and Step Functions' cause holds it)."""
    return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__,
                       "requestId": "00000000-0000-0000-0000-000000000000",
                       "stackTrace": traceback.format_tb(exc.__traceback__)})


@pytest.mark.parametrize("cls", [c for c in CLASSES if c is not InvalidFleetSpec], ids=lambda c: c.__name__)
@pytest.mark.parametrize("unit", ["x", "\n", "é", "\U0001F600", '"'])
def test_no_error_class_makes_a_message_longer_than_the_bound(cls: type[EiplaneError], unit: str) -> None:
    try:
        raise cls("an AWS answer: " + unit * 1_000_000)
    except EiplaneError as exc:
        message = str(exc)
        payload = lambda_error_payload(exc)
    assert len(json.dumps(message)) <= MAX_MESSAGE_CHARS + 2
    assert message.startswith("an AWS answer: ") and message.endswith(" more characters]")
    assert len(payload) < AWS_MAX_CAUSE_CHARS


def test_a_short_message_is_kept_whole() -> None:
    assert str(EiplaneError("short")) == "short"
    assert bounded("\U0001F600" * 682) == "\U0001F600" * 682  # 8,184 characters JSON-escaped
    assert bounded("x" * 8_192) == "x" * 8_192


def test_the_marker_counts_what_was_cut() -> None:
    cut = bounded("x" * 10_000)
    kept = len(cut) - len(" [... message cut: 1848 more characters]")
    assert cut == "x" * kept + f" [... message cut: {10_000 - kept} more characters]"
    assert len(cut) <= MAX_MESSAGE_CHARS


def test_invalid_fleet_spec_lists_twenty_problems_then_counts() -> None:
    exc = InvalidFleetSpec([f"field{i}: bad" for i in range(100)])
    assert str(exc) == ("fleet spec has 100 problems: " + "; ".join(f"field{i}: bad" for i in range(20))
                        + "; and 80 more")
    assert len(exc.problems) == 100


def test_invalid_fleet_spec_bounds_each_problem_and_the_list() -> None:
    exc = InvalidFleetSpec([f"field{i}: " + "\U0001F600" * 10_000 for i in range(20)])
    message = str(exc)
    assert len(json.dumps(message)) < MAX_MESSAGE_CHARS
    assert message.startswith("fleet spec has 20 problems: field0: ")
    assert message.endswith(" more")  # the list stopped at its budget and says how many it left out
    assert all(p.endswith(" [...]") for p in exc.problems)
