"""Posting: the pipeline facade, settling each payment with the ledger, and the concurrent scheduler."""

from .outcome import Kind, Outcome
from .pipeline import Pipeline, rules_for
from .scheduler import Halt

__all__ = ["Halt", "Kind", "Outcome", "Pipeline", "rules_for"]
