"""Who may call the relay's HTTP routes, and who did.

`gate.Gate` admits a call or refuses it (`errors.CallerRefused`): Microsoft Entra ID applications
(`entra`: the bearer token and App Service Authentication's principal), Standard Webhooks senders
(`signature`, with `deliveries` refusing replays), or anyone for local development. What it admits
is a `caller.Caller`, recorded with every payment it sends.
"""

from .caller import LOCAL, Caller
from .deliveries import Deliveries, MemoryDeliveries, TableDeliveries
from .gate import Gate

__all__ = ["LOCAL", "Caller", "Deliveries", "Gate", "MemoryDeliveries", "TableDeliveries"]
