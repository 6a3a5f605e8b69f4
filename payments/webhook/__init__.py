"""The relay's HTTP routes, free of the Functions runtime so they are tested directly: `function_app.py`
only adapts `func.HttpRequest` to these handlers and the `Answer` back.

- `contract`: the vocabulary both the answers and the OpenAPI document use (problem types, headers);
- `post`: a webhook call of one payment or a batch; `check`: a batch checked, bounded;
- `answers`: what a caller is answered; `status`: a batch's status and the OpenAPI document;
- `openapi`: the contract as an OpenAPI 3.1 document.

Everything is imported on its first use (`payments.lazy`): a cold start loads none of it.
"""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .contract import Answer, problem
    from .post import handle_post
    from .status import handle_openapi, handle_status

__getattr__ = exports(
    __name__,
    {
        "Answer": ".contract",
        "problem": ".contract",
        "handle_post": ".post",
        "handle_status": ".status",
        "handle_openapi": ".status",
    },
)
__all__ = ["Answer", "handle_openapi", "handle_post", "handle_status", "problem"]
