"""Notifications: receipts and failure notices by email and SMS, received faxes by email.

``Notifier`` is the sender task; the rows it delivers are written by the store in the same
transaction as the outcome they tell of.
"""

from gateway.notify.notifier import Notifier, check_settings
from gateway.notify.templates import VARIABLES, Templates, load_templates

__all__ = ["VARIABLES", "Notifier", "Templates", "check_settings", "load_templates"]
