"""Posting a journal on request (issue 25): through page 30016's bound action journals({id})/Microsoft.NAV.post
on the sandbox built from that page's source (it takes a customer payment journal's id; Gen. Jnl.-Post
checks every line, then posts all or none), with the ledger in Azurite. The relay posts a journal only
when it holds nothing but its own lines."""

from __future__ import annotations

import io
import json

import requests

from devtools.invocation import context
from payments.cli import main as cli
from payments.ledger import TableLedgerStore
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.host import FUNCTIONS
from tests.support.webhook import call, pay


def _post(*extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    from contextlib import redirect_stderr

    with redirect_stderr(err):
        code = cli(["journal", "post", "--company", C, "--journal", J, *extra], out)
    return code, out.getvalue(), err.getvalue()


def _entries(drop):
    return {e.key: e for e in TableLedgerStore(drop.table).scan()}


def _foreign_line(sandbox) -> None:
    """A line someone enters by hand (through the API, as any client would)."""
    url = f"{sandbox.bc_base_url}/companies({C})/customerPaymentJournals({J})/customerPayments"
    body = {"customerNumber": "20000", "amount": "-9.00", "documentNumber": "BY-HAND-1", "postingDate": "2026-11-20"}
    resp = requests.post(
        url, data=json.dumps(body), headers={"Authorization": "Bearer someone", "Content-Type": "application/json"}, timeout=5
    )
    assert resp.status_code == 201


def test_a_journal_holding_only_the_relays_lines_is_posted_and_the_ledger_records_it(drop, sandbox):
    for n in range(3):
        resp, _ = call(pay(documentNumber=f"JP-{n}", postingDate="2026-11-20"))
        assert resp.status_code == 201
    code, out, err = _post()
    assert (code, out.strip()) == (0, f"journal {J} posted: 3 lines"), err
    assert sandbox.payments() == [] and len(sandbox.ledger_entries()) == 6  # two G/L entries a line
    assert all(e.booked is not None for e in _entries(drop).values())
    posts = [r for r in sandbox.requests if r.path.endswith("/Microsoft.NAV.post")]
    assert [r.path.split("/api/v2.0/")[1] for r in posts] == [f"companies({C})/journals({J})/Microsoft.NAV.post"]


def test_a_payment_whose_outcome_was_unknown_is_recognised_posted_and_its_resend_answered_from_it(drop, sandbox):
    """The insert's answer was lost (the line exists): the ledger holds it ambiguous. Posting the journal
    recognises the line as that payment by its natural key, records it as posted, then posts; the caller's
    resend is answered with it, and nothing is created twice."""
    sandbox.inject("drop-after")
    payment = pay(documentNumber="LOST-ANSWER-1", postingDate="2026-11-20")
    resp, body = call(payment)
    assert (resp.status_code, body["type"]) == (502, "urn:payments-relay:problem:outcome-unknown")
    [line] = sandbox.payments()
    code, out, _ = _post()
    assert code == 0 and "1 recognised as the relay's payments first" in out
    assert sandbox.payments() == []
    resp, again = call(payment)
    assert (resp.status_code, resp.headers["Payments-Already-Posted"], again["id"]) == (200, "true", line["id"])
    assert len(sandbox.ledger_entries()) == 2  # posted once


def test_a_journal_holding_a_line_the_relay_did_not_create_is_not_posted(drop, sandbox):
    resp, _ = call(pay(documentNumber="MINE-1", postingDate="2026-11-20"))
    assert resp.status_code == 201
    _foreign_line(sandbox)
    code, _, err = _post()
    assert code == 1
    assert "holds 1 line(s) the relay did not create (line numbers 20000)" in err and "nothing was posted" in err
    assert len(sandbox.payments()) == 2 and sandbox.ledger_entries() == []
    assert not any(r.path.endswith("/Microsoft.NAV.post") for r in sandbox.requests)


def test_an_empty_journal_is_not_posted(drop, sandbox):
    code, _, err = _post()
    assert code == 1 and "there is nothing to post" in err


def test_when_business_central_refuses_to_post_nothing_is_posted_and_the_operator_is_told_why(drop, sandbox):
    """A payment applied to an invoice number Business Central does not know is accepted into the journal
    (page 30055 takes an unknown Applies-to Doc. No.), but posting it finds no open customer ledger entry
    (codeunit 12: "There is no Cust. Ledger Entry within the filter."): none of the lines is posted."""
    resp, _ = call(pay(documentNumber="OK-1", postingDate="2026-11-20"))
    assert resp.status_code == 201
    resp, _ = call(pay(documentNumber="OK-2", postingDate="2026-11-20", appliesToInvoiceNumber="NO-SUCH-1"))
    assert resp.status_code == 201
    code, _, err = _post()
    assert code == 1
    assert "Business Central did not post the journal (There is no Cust. Ledger Entry" in err
    assert "nothing was posted" in err
    assert len(sandbox.payments()) == 2 and sandbox.ledger_entries() == []
    assert all(e.booked is None for e in _entries(drop).values())


def test_the_hourly_timer_posts_the_journals_the_setting_names(drop, sandbox, azure_env):
    azure_env("businesscentral", **drop.settings, PAYMENTS_POST_JOURNALS=f"{C}/{J}")
    resp, _ = call(pay(documentNumber="TIMER-1", postingDate="2026-11-20"))
    assert resp.status_code == 201
    FUNCTIONS["journal_post"].get_user_function()(None, context=context("journal_post"))
    assert sandbox.payments() == [] and len(sandbox.ledger_entries()) == 2


def test_journals_to_post_are_checked(azure_env, sandbox):
    import pytest

    from payments.errors import SettingsError
    from payments.settings import load_settings

    azure_env("businesscentral", PAYMENTS_POST_JOURNALS=f"{C}")
    with pytest.raises(SettingsError, match="companyId/journalId"):
        load_settings()


def test_a_line_whose_poster_is_still_recording_it_holds_the_posting_back(drop, sandbox):
    """A poster writes its outcomes just after giving back the journal's turn, so a posting can come in
    between: it finds the relay's line while the payment's claim is live. That line is the poster's to
    record, not someone else's: nothing is posted, and the operator is told to try again (not that the
    journal holds a foreign line). Once the outcome is written, the journal posts."""
    from datetime import UTC, datetime, timedelta

    from payments.ledger import Ledger

    sandbox.inject("drop-after")
    resp, _ = call(pay(documentNumber="RECORDING-1", postingDate="2026-11-20"))
    assert resp.status_code == 502
    [line] = sandbox.payments()
    ledger = Ledger(TableLedgerStore(drop.table))
    [entry] = _entries(drop).values()
    # The ledger as a live poster leaves it between the insert's answer and its ledger write.
    claimed = ledger.mark(entry, state="claimed", claimed_until=datetime.now(UTC) + timedelta(minutes=5))
    code, _, err = _post()
    assert code == 1
    assert "1 of the relay's payments in the journal are still being recorded" in err and "try again" in err
    assert "did not create" not in err
    assert len(sandbox.payments()) == 1 and sandbox.ledger_entries() == []
    ledger.mark(claimed, **Ledger.posted(line, status=201))  # the poster's write lands
    code, out, err = _post()
    assert (code, out.strip()) == (0, f"journal {J} posted: 1 lines"), err
    assert sandbox.payments() == [] and len(sandbox.ledger_entries()) == 2
