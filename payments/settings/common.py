"""What the settings' parts share: the comma-separated lists, what counts as loopback, the target's
default addresses, and the environment every part reads (`PAYMENTS_*`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic_settings import SettingsConfigDict

GRAPH_BASE_URL = "https://graph.microsoft.com/beta"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
BUSINESS_CENTRAL_SCOPE = "https://api.businesscentral.dynamics.com/.default"

Target = Literal["graph", "businesscentral"]
CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]")
SENDER = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
ENVIRONMENT = SettingsConfigDict(env_prefix="PAYMENTS_", case_sensitive=False, extra="ignore")


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def names(value: str, *, lower: bool = True) -> list[str]:
    """The items of a comma-separated setting, trimmed, empty ones dropped."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    return [v.lower() for v in items] if lower else items
