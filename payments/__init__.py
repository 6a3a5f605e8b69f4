"""Payments relay: validated customer payments posted exactly once to Business Central / Microsoft Graph."""

__version__ = "0.1.0"
