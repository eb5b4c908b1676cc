"""One place chooses the transport: ``[transport] kind`` → a ``FaxTransport``."""

from __future__ import annotations

from gateway.config import TransportSettings
from gateway.errors import ConfigError
from gateway.transports.base import FaxTransport, InboundLine


def build_transport(settings: TransportSettings, inbound: InboundLine) -> FaxTransport:
    """The configured transport, handing its arriving calls to ``inbound``. Building it loads
    libspandsp (a TransmitError if it cannot), so a broken install stops the start."""
    if settings.kind == "loopback":
        from gateway.transports.loopback import LoopbackTransport

        return LoopbackTransport(settings.loopback.remotes, inbound, pace=settings.loopback.pace)
    if settings.kind == "sip":
        from gateway.transports.sip import SipTransport

        return SipTransport(settings.sip, inbound)
    raise ConfigError(f"transport kind {settings.kind!r} is not available")
