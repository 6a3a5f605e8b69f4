"""Azure Functions entry points (Python v2 model): wiring only; the work lives in `payments`."""

import azure.functions as func

from payments import runtime, webhook

app = func.FunctionApp()
runtime.check_settings()


@app.function_name("customer_payments")
@app.route(
    route="companies/{companyId}/customerPaymentJournals/{journalId}/customerPayments",
    methods=[func.HttpMethod.POST],
    auth_level=func.AuthLevel.FUNCTION,
)
def customer_payments(req: func.HttpRequest) -> func.HttpResponse:
    answer = webhook.handle_post(
        body=req.get_body(),
        headers=dict(req.headers),
        company_id=req.route_params.get("companyId"),
        journal_id=req.route_params.get("journalId"),
        pipeline=runtime.pipeline,
    )
    return func.HttpResponse(
        body=answer.content(),
        status_code=answer.status,
        headers=answer.headers,
        mimetype=answer.media_type,
        charset="utf-8",
    )
