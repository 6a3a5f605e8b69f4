"""The Graph / Business Central adapter: everything that speaks to the target API."""

from .client import TargetClient
from .responses import Created, parse_retry_after
from .routes import Routes, odata_filter, posted_filter

__all__ = ["Created", "Routes", "TargetClient", "odata_filter", "parse_retry_after", "posted_filter"]
