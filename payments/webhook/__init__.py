"""The relay's HTTP routes, free of the Functions runtime so they are tested directly: `function_app.py`
only adapts `func.HttpRequest` to these handlers and the `Answer` back.

- `contract`: the vocabulary both the answers and the OpenAPI document use (problem types, headers);
- `post`: a webhook call of one payment or a batch; `check`: a batch checked, bounded;
- `answers`: what a caller is answered; `status`: a batch's status and the OpenAPI document;
- `openapi`: the contract as an OpenAPI 3.1 document.

The handlers are imported on their first call (`payments.lazy`): the contract is all a cold start loads.
"""

from typing import TYPE_CHECKING

from ..lazy import exports
from .contract import Answer, problem

if TYPE_CHECKING:
    from .post import handle_post
    from .status import handle_openapi, handle_status

__getattr__ = exports(
    __name__, {"handle_post": ".post", "handle_status": ".status", "handle_openapi": ".status"}
)
__all__ = ["Answer", "handle_openapi", "handle_post", "handle_status", "problem"]
