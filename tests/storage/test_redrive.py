"""Nothing stranded (issue 13): an inbox file whose event never came is processed by the timer, once;
a dead-lettered event is re-driven and its dead letter removed; a file another worker holds is left
for it; the command line shows and re-drives the same files."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobLeaseClient

from devtools.invocation import context
from payments import runtime
from payments.cli import main as cli
from payments.filedrop.redrive import redrive, stranded
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import amounts, blobs, report_of, upload
from tests.support.host import FUNCTIONS

CSV = "customerNumber,documentNumber,amount\r\n10000,R-1,-10.10\r\n20000,R-2,-20.20\r\n"
LATER = datetime.now(UTC) + timedelta(hours=1)  # past PAYMENTS_REDRIVE_AFTER_SECONDS for every file here


def dead_letter(drop, name: str, letter: str = "S1/2026/11/25/4/0b6f.json") -> str:
    """What Event Grid writes when it gives up on a BlobCreated event: a JSON array of the events."""
    event = {
        "id": "9b9c3c1e-0000-4000-8000-000000000001",
        "eventType": "Microsoft.Storage.BlobCreated",
        "subject": f"/blobServices/default/containers/{drop.inbox}/blobs/{name}",
        "data": {"url": f"http://127.0.0.1/devstoreaccount1/{drop.inbox}/{name}"},
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
    }
    container = drop.service.get_container_client(drop.settings["PAYMENTS_DEADLETTER_CONTAINER"])
    if not container.exists():
        container.create_container()
    container.upload_blob(letter, json.dumps([event]).encode())
    return letter


def test_a_file_whose_event_never_came_is_processed_once_by_the_redrive(drop, sandbox):
    name = upload(drop, f"{C}/{J}/quiet.csv", CSV)
    assert stranded(drop.service, runtime.file_drop().settings) == []  # not yet due
    [(item, result)] = redrive(runtime.file_drop(), now=LATER)
    assert item.name == name and item.why.startswith("in the inbox for ")
    assert result.status == "processed" and amounts(sandbox) == ["-20.20", "-10.10"]
    assert report_of(drop, name)["totals"] == {"records": 2, "created": 2}
    assert blobs(drop, drop.inbox) == []
    assert redrive(runtime.file_drop(), now=LATER) == []  # nothing left, nothing posted twice
    assert len(sandbox.payments()) == 2


def test_the_timer_re_drives_a_dead_lettered_event_and_removes_its_dead_letter(drop, sandbox):
    name = upload(drop, f"{C}/{J}/lost.csv", CSV)
    letter = dead_letter(drop, name)
    [trigger] = FUNCTIONS["inbox_redrive"].get_bindings_dict()["bindings"]
    assert (trigger["type"], trigger["schedule"]) == ("timerTrigger", "0 */10 * * * *")
    FUNCTIONS["inbox_redrive"].get_user_function()(
        None, context=context("inbox_redrive")
    )  # the file is young: the dead letter names it
    assert amounts(sandbox) == ["-20.20", "-10.10"]
    assert blobs(drop, drop.inbox) == []
    assert letter not in blobs(drop, drop.settings["PAYMENTS_DEADLETTER_CONTAINER"])


def test_a_file_another_worker_holds_is_left_for_it_and_its_dead_letter_kept(drop, sandbox):
    name = upload(drop, f"{C}/{J}/busy.csv", CSV)
    letter = dead_letter(drop, name)
    BlobLeaseClient(drop.service.get_blob_client(drop.inbox, name)).acquire(lease_duration=15)
    [(item, result)] = redrive(runtime.file_drop(), now=LATER)
    assert item.name == name and result is None
    assert sandbox.requests == [] and blobs(drop, drop.inbox) == [name]
    assert letter in blobs(drop, drop.settings["PAYMENTS_DEADLETTER_CONTAINER"])


def test_the_command_line_lists_and_re_drives_stranded_files(drop, sandbox, capsys):
    name = upload(drop, f"{C}/{J}/cli.csv", CSV)
    dead_letter(drop, name)
    out = io.StringIO()
    assert cli(["inbox", "list"], out) == 0
    assert out.getvalue().splitlines() == [
        f"{name}  its event was dead-lettered (MaxDeliveryAttemptsExceeded) (dead letters: "
        "S1/2026/11/25/4/0b6f.json)",
        "1 stranded files",
    ]
    out = io.StringIO()
    assert cli(["inbox", "redrive"], out) == 0
    assert out.getvalue().splitlines()[-1] == "1 stranded files re-driven"
    assert amounts(sandbox) == ["-20.20", "-10.10"]
