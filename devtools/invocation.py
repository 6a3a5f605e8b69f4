"""What the Python worker hands a function besides its bindings: a `context` whose `trace_context`
carries the host's W3C trace (traceparent, tracestate), for calling registered functions as it does."""

from __future__ import annotations

import os
import uuid
from types import SimpleNamespace


def context(function: str = "", traceparent: str | None = None, tracestate: str = "") -> SimpleNamespace:
    """A stand-in for azure.functions.Context with the attributes the worker fills in; a fresh trace
    (as the host starts one per invocation) unless `traceparent` is given."""
    parent = traceparent or f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    return SimpleNamespace(
        invocation_id=str(uuid.uuid4()),
        function_name=function,
        function_directory="",
        trace_context=SimpleNamespace(trace_parent=parent, trace_state=tracestate, attributes={}),
        retry_context=None,
    )
