"""fax-gateway: an email-to-fax gateway daemon with a Kazoo-compatible faxes API."""

__version__ = "0.1.0"
