"""The relay's HTTP routes, free of the Functions runtime so they are tested directly: `function_app.py`
only adapts `func.HttpRequest` to these handlers and the `Answer` back.

- `contract`: the vocabulary both the answers and the OpenAPI document use (problem types, headers);
- `post`: a webhook call of one payment or a batch; `check`: a batch checked, bounded;
- `answers`: what a caller is answered; `status`: a batch's status and the OpenAPI document;
- `openapi`: the contract as an OpenAPI 3.1 document.
"""

from .contract import Answer, problem
from .post import handle_post
from .status import handle_openapi, handle_status

__all__ = ["Answer", "handle_openapi", "handle_post", "handle_status", "problem"]
