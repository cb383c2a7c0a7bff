"""Python client of mdhub, the real-time market-data hub.

`Client` streams quotes, trades and feed status over mdhub's WebSocket
protocol: each update exactly once, in log order per symbol and channel,
across reconnects and gateway restarts — or an explicit `Reset` when the hub
cannot replay what was missed.
"""

from . import history
from .client import Client
from .sync import SyncClient
from .events import (
    Connected,
    Data,
    Disconnected,
    ErrorEvent,
    Quote,
    Reset,
    Status,
    Stopped,
    Trade,
)

__all__ = [
    "Client",
    "history",
    "Connected",
    "Data",
    "Disconnected",
    "ErrorEvent",
    "Quote",
    "Reset",
    "Status",
    "Stopped",
    "SyncClient",
    "Trade",
]
__version__ = "0.1.0"
