"""SIP signalling of our own: messages, digest authentication, transactions and dialogs."""
