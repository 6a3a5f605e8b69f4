"""A batch checked item by item, bounded: time, memory and the answer's size stay small whatever the
body holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import telemetry
from ..model import CustomerPayment, FieldError, Rules, check
from .contract import MAX_REPORTED_ERRORS


@dataclass(slots=True)
class BatchCheck:
    """A batch validated item by item until MAX_REPORTED_ERRORS problems are found, keeping only what
    its answer needs: so the time and memory a call costs stay bounded whatever the body holds."""

    payments: list[CustomerPayment] = field(default_factory=list)
    ignored: dict[int, list[str]] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS problems
    error_count: int = 0  # problems found in the items checked
    invalid: int = 0  # items checked that have at least one problem
    checked: int = 0  # items checked (the rest were not, once enough problems were found)


def check_batch(items: list[Any], prefix: str, rules: Rules) -> BatchCheck:
    out = BatchCheck()
    for i, item in enumerate(items):
        if out.error_count >= MAX_REPORTED_ERRORS:
            break  # the batch is refused already: the caller has enough to fix
        out.checked += 1
        checked = check(item, rules)
        if checked.payment is not None:
            if not out.invalid:  # once one is invalid nothing is posted: stop keeping payments
                out.payments.append(checked.payment)
                if checked.ignored:
                    out.ignored[i] = checked.ignored
            continue
        if not out.invalid:
            out.payments, out.ignored = [], {}
        out.invalid += 1
        out.error_count += len(checked.errors)
        room = MAX_REPORTED_ERRORS - len(out.errors)
        out.errors.extend(e.under(f"{prefix}/{i}") for e in checked.errors[:room])
    return out


def tell_refused(count: int, prefix: str, target: str, company: str, journal: str) -> None:
    """A refused batch's payments are each counted invalid; the first hundred get a log line each with
    their location, the rest one line together, so a hostile body cannot flood the log."""
    for i in range(min(count, MAX_REPORTED_ERRORS)):
        telemetry.payment_outcome(
            "invalid", target=target, company=company, journal=journal, location=f"{prefix}/{i}"
        )
    if count > MAX_REPORTED_ERRORS:
        telemetry.payment_outcome(
            "invalid",
            target=target,
            company=company,
            journal=journal,
            location=f"{prefix}/{MAX_REPORTED_ERRORS} to {prefix}/{count - 1}",
            count=count - MAX_REPORTED_ERRORS,
        )
