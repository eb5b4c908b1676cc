"""Fax transports: place one call, report what happened (see docs/transports.md).

``base`` holds the protocol and its records; ``loopback.LoopbackTransport`` is the simulated
T.30 line. Importing this package does not load libspandsp; building a loopback transport does.
"""

from __future__ import annotations

from gateway.transports.base import (
    FailureClass,
    FaxTransport,
    OutboundCall,
    ReceivedFax,
    TxResult,
)

__all__ = ["FailureClass", "FaxTransport", "OutboundCall", "ReceivedFax", "TxResult"]
