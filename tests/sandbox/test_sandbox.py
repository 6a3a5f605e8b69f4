"""The sandbox behaves like the target as far as the relay can tell, and its faults are the ones promised."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from sandbox import (
    SANDBOX_COMPANY_ID,
    SANDBOX_CUSTOMERS,
    SANDBOX_JOURNAL_ID,
    SANDBOX_JOURNAL_NAME,
    SANDBOX_TOKEN_HEADER,
    Limits,
    RecordedRequest,
    Sandbox,
    dumps,
)

AUTH = {"Authorization": "Bearer static-test-token"}
OTHER_GUID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    """The conftest's sandbox (emptied before each test), under the short name these tests use."""
    return sandbox


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def graph_url(sb: Sandbox, company: str = SANDBOX_COMPANY_ID, journal: str = SANDBOX_JOURNAL_ID) -> str:
    journals = f"{sb.graph_base_url}/financials/companies/{company}/customerPaymentJournals"
    return f"{journals}/{journal}/customerPayments"


def bc_url(sb: Sandbox, company: str = SANDBOX_COMPANY_ID, journal: str = SANDBOX_JOURNAL_ID) -> str:
    return f"{sb.bc_base_url}/companies({company})/customerPaymentJournals({journal})/customerPayments"


def post(http: requests.Session, url: str, body: object, **kwargs: object) -> requests.Response:
    headers = {**AUTH, "Content-Type": "application/json", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return http.post(url, data=data, headers=headers, timeout=5, **kwargs)  # type: ignore[arg-type]


def payment(**extra: object) -> dict[str, object]:
    return {"customerNumber": "10000", "amount": 10, "documentNumber": "d-1", **extra}


_TICK = threading.Event()  # never set: its wait() is the polling interval


def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        _TICK.wait(0.005)  # polling interval while waiting for the condition


# ----- success -------------------------------------------------------------------------------------------
def test_create_assigns_id_and_line_numbers(sb: Sandbox, http: requests.Session) -> None:
    first = post(http, graph_url(sb), payment(contactId="c-1"))
    assert first.status_code == 201, first.text
    assert first.headers["Content-Type"].startswith("application/json")
    body = first.json()
    assert body["lineNumber"] == 10000
    assert len(body["id"]) == 36 and body["id"] != "00000000-0000-0000-0000-000000000000"
    assert body["customerId"] == SANDBOX_CUSTOMERS["10000"]
    assert body["customerNumber"] == "10000"
    assert body["journalDisplayName"] == SANDBOX_JOURNAL_NAME
    assert body["documentNumber"] == "D-1"  # Code[20]: stored upper-cased
    assert body["contactId"] == "c-1"
    assert body["appliesToInvoiceId"] == "00000000-0000-0000-0000-000000000000"
    assert body["lastModifiedDateTime"].endswith("Z")
    assert first.headers["Location"].endswith(f"/customerPayments/{body['id']}")
    assert http.get(first.headers["Location"], headers=AUTH, timeout=5).json()["id"] == body["id"]

    second = post(http, graph_url(sb), payment(customerId=SANDBOX_CUSTOMERS["20000"], customerNumber=None))
    assert second.status_code == 400  # null is not accepted for a non-nullable property
    second = post(http, graph_url(sb), {"customerId": SANDBOX_CUSTOMERS["20000"], "amount": "4.20"})
    assert second.status_code == 201, second.text
    assert second.json()["lineNumber"] == 20000
    assert second.json()["customerNumber"] == "20000"
    stored = sb.payments()
    assert [p["lineNumber"] for p in stored] == [10000, 20000]
    assert stored[1]["amount"] == Decimal("4.20") and str(stored[1]["amount"]) == "4.20"


def test_amount_digits_exact_in_raw_response(sb: Sandbox, http: requests.Session) -> None:
    raw = '{"customerNumber": "10000", "amount": 12345678901234567890.12, "description": "x"}'
    resp = post(http, graph_url(sb), raw)
    assert resp.status_code == 201
    assert '"amount":12345678901234567890.12' in resp.text
    assert sb.payments()[0]["amount"] == Decimal("12345678901234567890.12")
    resp = post(http, graph_url(sb), '{"customerNumber": "10000", "amount": 4.20}')
    assert '"amount":4.20,' in resp.text
    listing = http.get(graph_url(sb), headers=AUTH, timeout=5)
    assert "12345678901234567890.12" in listing.text and "4.20" in listing.text


def test_business_central_path_form(sb: Sandbox, http: requests.Session) -> None:
    resp = post(http, bc_url(sb, SANDBOX_COMPANY_ID.upper(), f"'{SANDBOX_JOURNAL_ID}'"), payment())
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert "contactId" not in body and body["journalId"] == SANDBOX_JOURNAL_ID
    assert resp.headers["Location"].endswith(f"/customerPayments({body['id']})")
    rejected = post(http, bc_url(sb), payment(contactId="c"))
    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == "BadRequest_InvalidRequestBody"
    assert "innerError" not in rejected.json()["error"]
    assert len(sb.payments()) == 1


def test_read_only_and_odata_type_ignored(sb: Sandbox, http: requests.Session) -> None:
    body = payment(id=OTHER_GUID, lastModifiedDateTime="2000-01-01T00:00:00Z")
    body["@odata.type"] = "#microsoft.graph.customerPayment"
    resp = post(http, graph_url(sb), body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status_code == 201
    assert resp.json()["id"] != OTHER_GUID
    assert not resp.json()["lastModifiedDateTime"].startswith("2000")


# ----- errors -------------------------------------------------------------------------------------------
def test_missing_bearer_is_401(sb: Sandbox, http: requests.Session) -> None:
    resp = http.post(graph_url(sb), json=payment(), timeout=5, headers={"client-request-id": "abc"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    error = resp.json()["error"]
    assert error["code"] == "Authentication_InvalidCredentials"
    assert error["innerError"]["client-request-id"] == "abc"
    assert post(http, graph_url(sb), payment(), headers={"Authorization": "Bearer "}).status_code == 401
    assert sb.payments() == []


@pytest.mark.parametrize(
    ("company", "journal", "code"),
    [
        (OTHER_GUID, SANDBOX_JOURNAL_ID, "Internal_CompanyNotFound"),
        (SANDBOX_COMPANY_ID, OTHER_GUID, "BadRequest_NotFound"),
    ],
)
def test_unknown_company_or_journal_is_404(
    sb: Sandbox, http: requests.Session, company: str, journal: str, code: str
) -> None:
    for url in (graph_url(sb, company, journal), bc_url(sb, company, journal)):
        resp = post(http, url, payment())
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == code


def test_content_type_and_body_errors(sb: Sandbox, http: requests.Session) -> None:
    resp = post(http, graph_url(sb), payment(), headers={"Content-Type": "text/plain"})
    assert (resp.status_code, resp.json()["error"]["code"]) == (415, "BadRequest_InvalidContentType")
    for raw in ("[1]", "not json", '{"customerNumber": "10000", "amount": NaN}'):
        resp = post(http, graph_url(sb), raw)
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "BadRequest_InvalidRequestBody"), raw
    resp = post(http, graph_url(sb), payment(colour="red"))
    assert "The property 'colour' does not exist on type 'Microsoft.NAV.customerPayment'" in resp.text
    for bad in ({"amount": "ten"}, {"amount": True}, {"lineNumber": "1"}, {"postingDate": "2024-13-01"}):
        resp = post(http, graph_url(sb), payment(**bad))
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "BadRequest_InvalidRequestBody"), bad
    resp = post(http, graph_url(sb), payment(appliesToInvoiceId="nope"))
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "Application_InvalidGUID")
    assert sb.payments() == []


def test_over_long_field(sb: Sandbox, http: requests.Session) -> None:
    resp = post(http, graph_url(sb), payment(documentNumber="X" * 25))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "Application_StringExceededLength"
    expected = "The length of the string is 25, but it must be less than or equal to 20 characters."
    assert expected in error["message"]
    assert post(http, graph_url(sb), payment(externalDocumentNumber="E" * 35)).status_code == 201


def test_customer_errors(sb: Sandbox, http: requests.Session) -> None:
    """Page 30055's customerNumber / customerId OnValidate labels, raised as AL Error() (a dialog)."""
    resp = post(http, graph_url(sb), payment(customerNumber="99999"))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "Application_DialogException"
    assert resp.json()["error"]["message"] == 'The "customerNumber" does not match to a Customer.'
    resp = post(http, graph_url(sb), payment(customerId=OTHER_GUID))
    assert resp.json()["error"]["code"] == "Application_DialogException"
    assert resp.json()["error"]["message"] == 'The "customerId" does not match to a Customer.'
    resp = post(http, graph_url(sb), payment(customerId=SANDBOX_CUSTOMERS["30000"]))
    assert resp.json()["error"]["code"] == "Application_DialogException"
    assert resp.json()["error"]["message"] == "The customer values do not match to a specific Customer."
    assert sb.payments() == []


def test_duplicate_line_number_is_409(sb: Sandbox, http: requests.Session) -> None:
    assert post(http, graph_url(sb), payment(lineNumber=15000)).status_code == 201
    resp = post(http, graph_url(sb), payment(lineNumber=15000))
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "Internal_EntityWithSameKeyExists"
    assert post(http, graph_url(sb), payment()).json()["lineNumber"] == 25000  # GetNewLineNo: last + 10000


def test_unknown_routes_and_methods(sb: Sandbox, http: requests.Session) -> None:
    resp = http.post(graph_url(sb) + "/$ref", json=payment(), headers=AUTH, timeout=5)
    assert resp.status_code == 404 and resp.json()["error"]["code"]
    resp = http.delete(graph_url(sb), headers=AUTH, timeout=5)
    assert resp.status_code == 405
    assert resp.json()["error"]["message"]


# ----- GET and $filter -----------------------------------------------------------------------------------
def test_get_with_filter(sb: Sandbox, http: requests.Session) -> None:
    post(http, graph_url(sb), payment(documentNumber="INV-1", externalDocumentNumber="ext-A", amount=12.34))
    post(http, graph_url(sb), payment(documentNumber="INV-2", externalDocumentNumber="o'brien"))
    post(http, bc_url(sb), payment(documentNumber="INV-3", customerNumber="20000"))

    def query(flt: str) -> list[dict]:
        resp = http.get(graph_url(sb), params={"$filter": flt}, headers=AUTH, timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()["value"]

    assert [p["documentNumber"] for p in query("")] == ["INV-1", "INV-2", "INV-3"]
    assert [p["documentNumber"] for p in query("documentNumber eq 'inv-2'")] == ["INV-2"]
    assert [p["documentNumber"] for p in query("externalDocumentNumber eq 'EXT-A'")] == ["INV-1"]
    assert [p["documentNumber"] for p in query("externalDocumentNumber eq 'o''brien'")] == ["INV-2"]
    assert len(query("customerNumber eq '10000' and amount eq 12.34")) == 1
    assert len(query(f"customerId eq {SANDBOX_CUSTOMERS['20000']}")) == 1
    resp = http.get(
        graph_url(sb), params={"$filter": "startswith(description, 'x')"}, headers=AUTH, timeout=5
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest_MethodNotImplemented"
    resp = http.get(bc_url(sb), params={"$top": "2"}, headers=AUTH, timeout=5)
    assert [p["documentNumber"] for p in resp.json()["value"]] == ["INV-1", "INV-2"]
    assert http.get(bc_url(sb), timeout=5).status_code == 401


# ----- faults --------------------------------------------------------------------------------------------
def test_fault_429_has_retry_after_and_creates_nothing(sb: Sandbox, http: requests.Session) -> None:
    sb.inject("429", times=2, retry_after="7")
    for _ in range(2):
        resp = post(http, graph_url(sb), payment())
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "7"
        assert resp.json()["error"]["code"]
    assert sb.payments() == []
    assert post(http, graph_url(sb), payment()).status_code == 201
    sb.inject("429")
    assert post(http, graph_url(sb), payment()).headers["Retry-After"] == "1"


def test_fault_503_and_gateway_errors(sb: Sandbox, http: requests.Session) -> None:
    sb.inject("503")
    sb.inject("503", retry_after="3")
    sb.inject("502")
    sb.inject("504")
    first = post(http, graph_url(sb), payment())
    assert first.status_code == 503 and "Retry-After" not in first.headers
    second = post(http, graph_url(sb), payment())
    assert second.status_code == 503 and second.headers["Retry-After"] == "3"
    assert post(http, bc_url(sb), payment()).status_code == 502
    assert http.get(bc_url(sb), headers=AUTH, timeout=5).status_code == 504
    assert sb.payments() == []
    assert len(sb.requests) == 4


def test_fault_drop_before_creates_nothing(sb: Sandbox, http: requests.Session) -> None:
    sb.inject("drop-before")
    with pytest.raises(requests.ConnectionError):
        post(http, graph_url(sb), payment())
    assert sb.payments() == []
    assert len(sb.requests) == 1 and b'"10000"' in sb.requests[0].body
    assert post(http, graph_url(sb), payment()).status_code == 201  # the session recovers


def test_fault_drop_after_creates_the_payment(sb: Sandbox, http: requests.Session) -> None:
    sb.inject("drop-after")
    with pytest.raises(requests.ConnectionError):
        post(http, graph_url(sb), payment(externalDocumentNumber="AMBIG-1"))
    assert [p["externalDocumentNumber"] for p in sb.payments()] == ["AMBIG-1"]


def test_fault_timeout_creates_and_never_answers(sb: Sandbox, http: requests.Session) -> None:
    sb.inject("timeout")
    with pytest.raises(requests.ReadTimeout):
        http.post(graph_url(sb), json=payment(), headers=AUTH, timeout=(5, 0.3))
    assert len(sb.payments()) == 1
    assert sb.in_flight == 1  # still held
    sb.reset()  # frees it, so later tests start with nothing in flight
    wait_until(lambda: sb.in_flight == 0)


def test_inject_rejects_unknown_fault(sb: Sandbox) -> None:
    with pytest.raises(ValueError):
        sb.inject("418")


# ----- identity ------------------------------------------------------------------------------------------
def test_identity_endpoint(sb: Sandbox, http: requests.Session) -> None:
    params = {
        "api-version": "2019-08-01",
        "resource": "https://api.businesscentral.dynamics.com",  # a name, never contacted
    }
    assert http.get(sb.identity_endpoint, params=params, timeout=5).status_code == 401
    wrong = {"X-IDENTITY-HEADER": "wrong"}
    assert http.get(sb.identity_endpoint, params=params, headers=wrong, timeout=5).status_code == 401
    good = {"X-IDENTITY-HEADER": SANDBOX_TOKEN_HEADER}
    old = {**params, "api-version": "2017-09-01"}
    assert http.get(sb.identity_endpoint, params=old, headers=good, timeout=5).status_code == 400

    before = int(time.time())
    resp = http.get(sb.identity_endpoint, params=params, headers=good, timeout=5)
    assert resp.status_code == 200
    token = resp.json()
    assert set(token) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert token["access_token"].startswith("sandbox-token-")
    assert isinstance(token["expires_on"], str) and int(token["expires_on"]) >= before + 3600
    assert token["resource"] == params["resource"] and token["token_type"] == "Bearer"
    user = http.get(sb.identity_endpoint, params={**params, "client_id": OTHER_GUID}, headers=good, timeout=5)
    assert user.json()["client_id"] == OTHER_GUID
    assert user.json()["access_token"] != token["access_token"]
    assert len(sb.token_requests) == 5 and sb.requests == []

    issued = {"Authorization": f"Bearer {token['access_token']}"}
    assert post(http, graph_url(sb), payment(), headers=issued).status_code == 201


# ----- housekeeping --------------------------------------------------------------------------------------
def test_seed_helpers_and_reset(sb: Sandbox, http: requests.Session) -> None:
    company = sb.add_company()
    journal = sb.add_journal(name="cash", company_id=company)
    customer = sb.add_customer("c-900", company_id=company)
    resp = post(http, bc_url(sb, company, journal), {"customerNumber": "C-900", "amount": 1})
    assert resp.status_code == 201, resp.text
    assert resp.json()["customerId"] == customer and resp.json()["journalDisplayName"] == "CASH"
    assert len(sb.payments(company, journal)) == 1
    sb.inject("503")
    sb.reset()
    assert sb.payments(company, journal) == [] and sb.requests == [] and sb.pending_faults() == []


def test_dumps_keeps_decimal_digits() -> None:
    assert dumps({"a": Decimal("0.10"), "b": [Decimal("1E+2"), "x"], "c": None}) == (
        '{"a":0.10,"b":[100,"x"],"c":null}'
    )


def test_stop_releases_held_requests() -> None:
    sandbox = Sandbox().start()
    sandbox.inject("timeout")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(graph_url(sandbox), json=payment(), headers=AUTH, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    wait_until(lambda: len(sandbox.payments()) == 1)
    started = time.monotonic()
    sandbox.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 3
    assert len(errors) == 1 and isinstance(errors[0], requests.ConnectionError)


def test_handler_failure_answers_500_and_server_survives(
    sb: Sandbox, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(sb, "_validate", boom)
    resp = post(http, graph_url(sb), payment())
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "Internal_ServerError"
    assert "secret" not in resp.text and "Traceback" not in resp.text
    monkeypatch.undo()
    assert post(http, graph_url(sb), payment()).status_code == 201


def test_entity_path_is_read_only(sb: Sandbox, http: requests.Session) -> None:
    created = post(http, bc_url(sb), payment()).json()
    entity = f"{bc_url(sb)}({created['id']})"
    assert http.get(entity, headers=AUTH, timeout=5).json()["id"] == created["id"]
    resp = post(http, entity, payment())
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET"
    assert len(sb.payments()) == 1


# ----- $batch --------------------------------------------------------------------------------------------
FORMS = pytest.mark.parametrize("form", ["graph", "bc"])
LIMITS = {"graph": 20, "bc": 100}


def batch_url(sb: Sandbox, form: str) -> str:
    return f"{sb.graph_base_url if form == 'graph' else sb.bc_base_url}/$batch"


def inner_url(form: str, company: str = SANDBOX_COMPANY_ID, journal: str = SANDBOX_JOURNAL_ID) -> str:
    if form == "graph":
        return f"/financials/companies/{company}/customerPaymentJournals/{journal}/customerPayments"
    return f"companies({company})/customerPaymentJournals({journal})/customerPayments"


def inner_post(rid: str, form: str, body: object, url: str | None = None) -> dict[str, object]:
    return {
        "id": rid,
        "method": "POST",
        "url": url or inner_url(form),
        "headers": {"Content-Type": "application/json"},
        "body": body,
    }


def post_batch(
    http: requests.Session, sb: Sandbox, form: str, items: list, **kwargs: object
) -> requests.Response:
    """POST a batch asking, as the relay does, to go on past a failed operation."""
    headers = {"Prefer": "odata.continue-on-error", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return post(http, batch_url(sb, form), dumps({"requests": items}), headers=headers, **kwargs)


def by_id(resp: requests.Response) -> dict[str, dict]:
    assert resp.status_code == 200, resp.text
    return {r["id"]: r for r in resp.json()["responses"]}


@FORMS
def test_batch_creates_each_payment(sb: Sandbox, http: requests.Session, form: str) -> None:
    amounts = [Decimal("12345678901234567890.12"), Decimal("4.20"), Decimal("0.10")]
    items = [
        inner_post(str(i), form, payment(amount=a, documentNumber=f"B-{i}")) for i, a in enumerate(amounts, 1)
    ]
    resp = post_batch(http, sb, form, items)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].split(";")[0] == "application/json"
    assert [r["id"] for r in resp.json()["responses"]] == ["3", "2", "1"]  # reversed: map by id
    for text in ('"amount":12345678901234567890.12', '"amount":4.20,', '"amount":0.10,'):
        assert text in resp.text
    answers = by_id(resp)
    for i in ("1", "2", "3"):
        answer = answers[i]
        assert answer["status"] == 201
        assert answer["body"]["lineNumber"] == int(i) * 10000
        assert answer["body"]["documentNumber"] == f"B-{i}"
        assert answer["headers"]["Content-Type"] == "application/json; odata.metadata=minimal"
        entity = f"/{answer['body']['id']}" if form == "graph" else f"({answer['body']['id']})"
        assert answer["headers"]["Location"].endswith(f"/customerPayments{entity}")
    assert ("contactId" in answers["1"]["body"]) == (form == "graph")
    stored = sb.payments()
    assert [p["lineNumber"] for p in stored] == [10000, 20000, 30000]
    assert [str(p["amount"]) for p in stored] == [str(a) for a in amounts]
    assert sb.batch_count == 1
    fetched = http.get(answers["2"]["headers"]["Location"], headers=AUTH, timeout=5)
    assert fetched.status_code == 200 and '"amount":4.20,' in fetched.text


@FORMS
def test_batch_mixed_valid_and_invalid(sb: Sandbox, http: requests.Session, form: str) -> None:
    items = [
        inner_post("ok", form, payment()),
        inner_post("no-customer", form, payment(customerNumber="99999")),
        inner_post("too-long", form, payment(documentNumber="X" * 25)),
    ]
    answers = by_id(post_batch(http, sb, form, items))
    assert {k: v["status"] for k, v in answers.items()} == {"ok": 201, "no-customer": 400, "too-long": 400}
    assert answers["no-customer"]["body"]["error"]["code"] == "Application_DialogException"
    assert answers["too-long"]["body"]["error"]["code"] == "Application_StringExceededLength"
    assert ("innerError" in answers["too-long"]["body"]["error"]) == (form == "graph")
    assert [p["documentNumber"] for p in sb.payments()] == ["D-1"]


@FORMS
def test_batch_over_limit_is_400(sb: Sandbox, http: requests.Session, form: str) -> None:
    limit = LIMITS[form]
    items = [inner_post(str(i), form, payment()) for i in range(limit + 1)]
    resp = post_batch(http, sb, form, items)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "BadRequest_InvalidRequestBody" and str(limit) in error["message"]
    assert sb.payments() == [] and sb.inner_requests == [] and sb.batch_count == 0
    answers = by_id(post_batch(http, sb, form, items[:limit]))  # exactly the limit is fine
    assert {a["status"] for a in answers.values()} == {201}
    assert len(sb.payments()) == limit


@FORMS
def test_batch_inner_faults(sb: Sandbox, http: requests.Session, form: str) -> None:
    sb.inject_inner("429", retry_after="2")
    items = [inner_post(str(i), form, payment(documentNumber=f"B-{i}")) for i in (1, 2, 3)]
    answers = by_id(post_batch(http, sb, form, items))
    assert answers["1"]["status"] == 429
    assert answers["1"]["headers"]["Retry-After"] == "2"
    assert answers["1"]["body"]["error"]["code"] == "Application_TooManyRequests"
    assert (answers["2"]["status"], answers["3"]["status"]) == (201, 201)
    assert [p["documentNumber"] for p in sb.payments()] == ["B-2", "B-3"]
    assert sb.pending_inner_faults() == [] and sb.pending_faults() == []

    sb.inject_inner("503")
    sb.inject_inner("429")
    answers = by_id(post_batch(http, sb, form, items[:2]))
    assert answers["1"]["status"] == 503 and "Retry-After" not in answers["1"]["headers"]
    assert answers["2"]["status"] == 429 and answers["2"]["headers"]["Retry-After"] == "1"
    assert len(sb.payments()) == 2
    with pytest.raises(ValueError):
        sb.inject_inner("drop-after")
    sb.inject_inner("429", times=3)
    sb.reset()
    assert sb.pending_inner_faults() == [] and sb.inner_requests == [] and sb.batch_count == 0


@FORMS
def test_batch_outer_faults_apply_to_the_whole_batch(sb: Sandbox, http: requests.Session, form: str) -> None:
    items = [inner_post(str(i), form, payment()) for i in (1, 2)]
    sb.inject("429")
    resp = post_batch(http, sb, form, items)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert sb.payments() == [] and sb.inner_requests == [] and sb.batch_count == 0
    sb.inject("drop-before")
    with pytest.raises(requests.ConnectionError):
        post_batch(http, sb, form, items)
    assert sb.payments() == []
    sb.inject("drop-after")
    with pytest.raises(requests.ConnectionError):
        post_batch(http, sb, form, items)
    assert len(sb.payments()) == 2 and len(sb.inner_requests) == 2  # every inner request ran
    assert len(sb.requests) == 3 and sb.pending_faults() == []
    assert {a["status"] for a in by_id(post_batch(http, sb, form, items)).values()} == {201}


def test_batch_counts_as_one_request_for_concurrency(sb: Sandbox) -> None:
    sb.limits = Limits(concurrent=1, queue=0)
    # Long enough that the first batch is surely still running when the second arrives, however busy
    # the machine (at 0.1 s per inner request it had sometimes finished: a 200 instead of the 429).
    sb.latency = 1.0
    items = [inner_post(str(i), "graph", payment()) for i in (1, 2, 3)]
    results: list[requests.Response] = []

    def call() -> None:
        with requests.Session() as session:
            results.append(post_batch(session, sb, "graph", items))

    worker = threading.Thread(target=call)
    worker.start()
    wait_until(lambda: sb.in_flight == 1)
    assert sb.in_flight == 1  # three inner requests, one request in flight
    with requests.Session() as session:
        throttled = post_batch(session, sb, "graph", items)
    worker.join()
    assert throttled.status_code == 429
    assert sb.throttled_count == 1
    assert {a["status"] for a in by_id(results[0]).values()} == {201}
    assert len(sb.payments()) == 3 and sb.batch_count == 1


def test_batch_recording_and_inner_get(sb: Sandbox, http: requests.Session) -> None:
    headers = {"Content-Type": "application/json", "client-request-id": "inner-1"}
    body = payment(documentNumber="find-me", amount=Decimal("1.50"))
    items = [
        {"id": "a", "method": "POST", "url": inner_url("graph"), "headers": headers, "body": body},
        {"id": "b", "method": "POST", "url": inner_url("graph"), "headers": headers, "body": payment()},
    ]
    raw = dumps({"requests": items})
    resp = post(http, batch_url(sb, "graph"), raw)
    assert resp.status_code == 200
    assert len(sb.requests) == 1
    outer = sb.requests[0]
    assert (outer.method, outer.path, outer.body) == ("POST", "/beta/$batch", raw.encode())
    assert [(r.method, r.path, r.headers) for r in sb.inner_requests] == [
        ("POST", inner_url("graph"), headers)
    ] * 2
    assert sb.inner_requests[0].body == dumps(body).encode() and b'"amount":1.50' in sb.inner_requests[0].body

    query = "?$filter=documentNumber eq 'FIND-ME'"
    get = {"id": "q", "method": "GET", "url": inner_url("graph") + query}
    answer = by_id(post_batch(http, sb, "graph", [get]))["q"]
    assert answer["status"] == 200
    assert [p["documentNumber"] for p in answer["body"]["value"]] == ["FIND-ME"]
    assert len(sb.requests) == 2 and len(sb.inner_requests) == 3
    assert sb.inner_requests[-1] == RecordedRequest("GET", inner_url("graph") + query, {}, b"")


@FORMS
def test_batch_malformed_auth_and_methods(sb: Sandbox, http: requests.Session, form: str) -> None:
    url = batch_url(sb, form)
    ok = inner_post("1", form, payment())
    resp = http.post(
        url, data=dumps({"requests": [ok]}), headers={"Content-Type": "application/json"}, timeout=5
    )
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    for raw in (
        "",
        "not json",
        "[]",
        "{}",
        '{"requests": []}',
        '{"requests": {}}',
        dumps({"requests": [{**ok, "id": ""}]}),
        dumps({"requests": [{k: v for k, v in ok.items() if k != "id"}]}),
        dumps({"requests": [ok, {**ok}]}),  # duplicate id
        dumps({"requests": [{**ok, "url": None}]}),
        dumps({"requests": [{**ok, "headers": {"X": 1}}]}),
    ):
        resp = post(http, url, raw)
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "BadRequest_InvalidRequestBody"), raw
    assert (
        post(http, url, dumps({"requests": [ok]}), headers={"Content-Type": "text/plain"}).status_code == 415
    )
    assert http.get(url, headers=AUTH, timeout=5).status_code == 405
    assert sb.payments() == [] and sb.inner_requests == [] and sb.batch_count == 0

    missing_type = {**ok, "headers": {}}
    unknown = inner_post("2", form, payment(), url=inner_url(form, company=OTHER_GUID))
    entity = inner_post(
        "3",
        form,
        payment(),
        url=inner_url(form) + (f"/{OTHER_GUID}" if form == "graph" else f"({OTHER_GUID})"),
    )
    other_form = inner_post("4", form, payment(), url=inner_url("bc" if form == "graph" else "graph"))
    answers = by_id(post_batch(http, sb, form, [missing_type, unknown, entity, other_form]))
    assert answers["1"]["status"] == 415
    assert (answers["2"]["status"], answers["2"]["body"]["error"]["code"]) == (
        404,
        "Internal_CompanyNotFound",
    )
    assert answers["3"]["status"] == 405 and answers["3"]["headers"]["Allow"] == "GET"
    assert answers["4"]["status"] == 404
    assert sb.payments() == []


def test_bc_batch_accepts_leading_slash_and_absolute_urls(sb: Sandbox, http: requests.Session) -> None:
    relative = inner_url("bc")
    items = [
        inner_post("plain", "bc", payment(), url=relative),
        inner_post("slash", "bc", payment(), url="/" + relative),
        inner_post("absolute", "bc", payment(), url=f"{sb.bc_base_url}/{relative}"),
    ]
    answers = by_id(post_batch(http, sb, "bc", items))
    assert {k: a["status"] for k, a in answers.items()} == {"plain": 201, "slash": 201, "absolute": 201}
    assert {a["headers"]["Location"].split("customerPayments(")[0] for a in answers.values()} == {
        f"{bc_url(sb)}".split("customerPayments")[0]
    }
    assert len(sb.payments()) == 3


def test_batch_inner_failure_answers_500_for_that_item(
    sb: Sandbox, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(sb, "_validate", boom)
    get = {"id": "2", "method": "GET", "url": inner_url("graph")}
    resp = post_batch(http, sb, "graph", [inner_post("1", "graph", payment()), get])
    answers = by_id(resp)
    assert answers["1"]["status"] == 500 and answers["1"]["body"]["error"]["code"] == "Internal_ServerError"
    assert answers["2"]["status"] == 200 and "secret" not in resp.text


def test_latency_is_the_whole_answer_time_with_the_work_done_inside_it(
    sb: Sandbox, http: requests.Session
) -> None:
    # Like a real service, the payment exists before its answer leaves: the latency is the time the
    # request takes, the sandbox's own work included, so cap / latency requests per second is reachable.
    sb.latency = 0.4
    answers: list[requests.Response] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: answers.append(post(http, bc_url(sb), payment())))
    worker.start()
    wait_until(lambda: len(sb.payments()) == 1)
    assert answers == []  # created, not yet answered
    worker.join(5)
    assert answers[0].status_code == 201
    assert time.monotonic() - started >= 0.4


def test_graph_financials_exist_only_under_beta(sb: Sandbox, http: requests.Session) -> None:
    """REFERENCE 1 (the Graph page, corrected from the service): only `/beta` has `/financials`."""
    v1 = graph_url(sb).replace("/beta/", "/v1.0/")
    assert post(http, v1, payment()).status_code == 404
    assert http.get(v1, headers=AUTH, timeout=5).status_code == 404
    assert (
        post(http, f"{sb.url}/v1.0/$batch", {"requests": [inner_post("1", "graph", payment())]}).status_code
        == 404
    )
    assert sb.payments() == []
    assert post(http, graph_url(sb), payment()).status_code == 201


def test_business_central_stops_a_batch_at_its_first_failure_unless_asked_to_go_on(
    sb: Sandbox, http: requests.Session
) -> None:
    """Business Central's default for API $batch: execution stops at the failed operation and the
    answer holds the results up to it; `Prefer: odata.continue-on-error` runs the rest (not in its docs:
    Kauffmann, "Batch calls with Business Central (2) - Error handling"; community forum). Graph runs
    every request of a JSON batch on its own."""
    items = [
        inner_post("1", "bc", payment(documentNumber="S-1")),
        inner_post("2", "bc", payment(customerNumber="99999", documentNumber="S-2")),
        inner_post("3", "bc", payment(documentNumber="S-3")),
    ]
    stopped = by_id(post(http, batch_url(sb, "bc"), dumps({"requests": items})))
    assert {k: v["status"] for k, v in stopped.items()} == {"1": 201, "2": 400}
    assert [p["documentNumber"] for p in sb.payments()] == ["S-1"]
    sb.reset()
    went_on = by_id(post_batch(http, sb, "bc", items))
    assert {k: v["status"] for k, v in went_on.items()} == {"1": 201, "2": 400, "3": 201}
    graph = [
        inner_post(i, "graph", body) for i, body in (("1", payment(customerNumber="99999")), ("2", payment()))
    ]
    assert {
        k: v["status"]
        for k, v in by_id(post(http, batch_url(sb, "graph"), dumps({"requests": graph}))).items()
    } == {"1": 400, "2": 201}
