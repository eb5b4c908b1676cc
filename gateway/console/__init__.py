"""The browser console under ``/console/``: server-rendered pages over the API's own store
calls and credential checks (see docs/console.md)."""

from gateway.console.app import console_home, create_console

__all__ = ["console_home", "create_console"]
