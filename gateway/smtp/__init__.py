"""The SMTP edge: aiosmtpd is used only inside this package."""
