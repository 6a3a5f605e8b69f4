"""Azure Functions entry points (Python v2 model): wiring only; the work lives in `payments`."""

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from payments import filedrop, runtime, telemetry, webhook

# The file-drop binding: the container comes from the app setting the code reads too, so the two never
# differ; the connection is the function's own storage account, reached with its identity.
INBOX_PATH = "%PAYMENTS_INBOX_CONTAINER%/{name}"
STORAGE_CONNECTION = "AzureWebJobsStorage"
WORK_QUEUE = "%PAYMENTS_WORK_QUEUE%"
PRIORITY_QUEUE = "%PAYMENTS_PRIORITY_QUEUE%"

app = func.FunctionApp()
runtime.check_settings()
runtime.start_telemetry()


# Every route is anonymous to the host: the relay admits callers itself (payments.inbound), Entra ID
# applications on these routes, Standard Webhooks senders on theirs. Function keys are not used.
PAYMENTS_ROUTE = "companies/{companyId}/customerPaymentJournals/{journalId}/customerPayments"
SIGNED = "webhooks/{sender}/"


@app.function_name("customer_payments")
@app.route(route=PAYMENTS_ROUTE, methods=[func.HttpMethod.POST], auth_level=func.AuthLevel.ANONYMOUS)
def customer_payments(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation("customer_payments", context.trace_context):
        return http_response(post(req))


@app.function_name("signed_customer_payments")
@app.route(route=SIGNED + PAYMENTS_ROUTE, methods=[func.HttpMethod.POST], auth_level=func.AuthLevel.ANONYMOUS)
def signed_customer_payments(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation("signed_customer_payments", context.trace_context):
        return http_response(post(req, sender=req.route_params.get("sender")))


@app.function_name("batch_status")
@app.route(route="batches/{batchId}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
def batch_status(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation("batch_status", context.trace_context):
        return http_response(status(req))


@app.function_name("signed_batch_status")
@app.route(
    route=SIGNED + "batches/{batchId}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS
)
def signed_batch_status(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation("signed_batch_status", context.trace_context):
        return http_response(status(req, sender=req.route_params.get("sender")))


@app.function_name("openapi")
@app.route(route="openapi.json", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation("openapi", context.trace_context):
        return http_response(webhook.handle_openapi(headers=dict(req.headers), gate=runtime.gate))


def post(req: func.HttpRequest, sender: str | None = None) -> "webhook.Answer":
    return webhook.handle_post(
        body=req.get_body(),
        headers=dict(req.headers),
        company_id=req.route_params.get("companyId"),
        journal_id=req.route_params.get("journalId"),
        pipeline=runtime.pipeline,
        gate=runtime.gate,
        sender=sender,
    )


def status(req: func.HttpRequest, sender: str | None = None) -> "webhook.Answer":
    return webhook.handle_status(
        batch_id=req.route_params.get("batchId"),
        headers=dict(req.headers),
        pipeline=runtime.pipeline,
        gate=runtime.gate,
        sender=sender,
    )


def http_response(answer: "webhook.Answer") -> func.HttpResponse:
    return func.HttpResponse(
        body=answer.content(),
        status_code=answer.status,
        headers=answer.headers,
        mimetype=answer.media_type,
        charset="utf-8",
    )


# The only function that sends payments to the target when PAYMENTS_WORK_QUEUE is set; host.json's
# queues section bounds how many messages an instance takes at once, the shared limits the rest.
@app.function_name("post_work")
@app.queue_trigger(arg_name="message", queue_name=WORK_QUEUE, connection=STORAGE_CONNECTION)
def post_work(message: func.QueueMessage, context: func.Context) -> None:
    with telemetry.invocation("post_work", context.trace_context):
        runtime.poster().handle(message.get_body())


# Small calls a webhook caller waits for: a queue and a function of their own, which Flex Consumption
# scales on their own, so they are not behind the batches on the work queue.
@app.function_name("post_priority")
@app.queue_trigger(arg_name="message", queue_name=PRIORITY_QUEUE, connection=STORAGE_CONNECTION)
def post_priority(message: func.QueueMessage, context: func.Context) -> None:
    with telemetry.invocation("post_priority", context.trace_context):
        runtime.poster(priority=True).handle(message.get_body())


# A BlobClient (SDK-type binding) instead of InputStream: the host hands over a reference, not
# the file's bytes, so a large file is streamed by payments.filedrop rather than held in memory.
@app.function_name("payment_file_drop")
@app.blob_trigger(
    arg_name="client",
    path=INBOX_PATH,
    connection=STORAGE_CONNECTION,
    source=func.BlobSource.EVENT_GRID,
)
def payment_file_drop(client: blob.BlobClient, context: func.Context) -> None:
    with telemetry.invocation("payment_file_drop", context.trace_context):
        filedrop.on_blob(client.container_name, client.blob_name, runtime.file_drop)


# Retention of payment keys (PAYMENTS_LEDGER_RETENTION_DAYS): expired entries are ignored on read;
# this removes them nightly so the table does not grow without bound.
@app.function_name("ledger_purge")
@app.timer_trigger(arg_name="timer", schedule="0 17 3 * * *", run_on_startup=False, use_monitor=True)
def ledger_purge(timer: func.TimerRequest, context: func.Context) -> None:
    with telemetry.invocation("ledger_purge", context.trace_context):
        runtime.purge_ledger()


# Nothing stranded: inbox files whose event never came (dead-lettered, or uploaded while the
# subscription was missing) are processed after PAYMENTS_REDRIVE_AFTER_SECONDS.
# The journals PAYMENTS_POST_JOURNALS names are posted every hour, when they hold only the relay's lines.
@app.function_name("journal_post")
@app.timer_trigger(arg_name="timer", schedule="0 30 * * * *", run_on_startup=False, use_monitor=True)
def journal_post(timer: func.TimerRequest, context: func.Context) -> None:
    with telemetry.invocation("journal_post", context.trace_context):
        runtime.post_journals()


@app.function_name("inbox_redrive")
@app.timer_trigger(arg_name="timer", schedule="0 */10 * * * *", run_on_startup=False, use_monitor=True)
def inbox_redrive(timer: func.TimerRequest, context: func.Context) -> None:
    with telemetry.invocation("inbox_redrive", context.trace_context):
        runtime.redrive_inbox()


# Nothing stranded on the queue side either: accepted payments whose message was lost or poisoned, and
# claims whose poster died, go back on the work queue from the ledger (which holds their payloads).
@app.function_name("work_redrive")
@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True)
def work_redrive(timer: func.TimerRequest, context: func.Context) -> None:
    with telemetry.invocation("work_redrive", context.trace_context):
        runtime.measure_queues()  # the depths the alerts watch, every five minutes (before: it may raise)
        runtime.redrive_work()


runtime.freeze_startup_objects()  # last: everything above stays for the worker's life
