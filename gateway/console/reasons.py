"""Why an SMTP transaction ended as it did, in a sentence a person reads: from the reply the
gateway sent (its code, enhanced status code and words) and the errors it logged."""

from __future__ import annotations

from gateway.models import SmtpLogEntry

# (reply prefix, words in the reply or errors that must appear, the sentence). First match wins.
_RULES: tuple[tuple[str, str, str], ...] = (
    ("250", "", "Accepted: the message became the fax jobs linked below."),
    ("550 5.7.1 relaying denied", "", "The recipient's domain is not a faxbox of this gateway."),
    ("550 5.7.1", "", "The sender is not on this faxbox's list of permitted senders."),
    (
        "550 5.1.1",
        "",
        "The recipient address holds no fax number that can be dialled.",
    ),
    ("550 5.6.2", "", "The message used bare line feeds, which this gateway is set to refuse."),
    ("554 5.6.0", "encrypt", "The PDF is encrypted (password protected), so it cannot be faxed."),
    ("554 5.6.0", "no fax document", "The message had no attachment or text that can be faxed."),
    ("554 5.6.0", "", "An attachment is damaged or unreadable, so it cannot be faxed."),
    ("554 5.6.1", "libreoffice", "Office documents need LibreOffice, which this gateway lacks."),
    ("554 5.6.1", "", "An attachment is of a kind this gateway cannot fax."),
    ("554 5.6.3", "", "The text uses characters that no installed font can draw."),
    ("554 5.6.5", "", "An office document could not be converted to fax pages."),
    ("554 5.3.4", "", "The fax would have more pages than this gateway allows."),
    ("552", "", "The message is larger than this gateway accepts."),
    ("451 4.3.2", "", "The gateway was too busy; the sender's mail server will try again."),
    ("451", "", "A temporary failure; the sender's mail server will try again."),
    ("452 4.5.3", "", "The message had more recipients than this gateway takes at once."),
    ("530", "", "The sender must use TLS or sign in (SMTP AUTH) first."),
    ("535", "", "The SMTP user name or password was wrong."),
    ("454", "", "Too many failed SMTP sign-ins from this address; it must wait."),
    ("500 5.5.2", "", "A line of the message was longer than SMTP allows."),
)


def reason(entry: SmtpLogEntry) -> str:
    reply = entry.reply_text or ""
    if entry.reply_code is not None and not reply.startswith(str(entry.reply_code)):
        reply = f"{entry.reply_code} {reply}"
    haystack = " ".join([reply, *entry.errors]).lower()
    for prefix, needle, sentence in _RULES:
        if reply.startswith(prefix) and needle in haystack:
            return sentence
    if entry.reply_code is None:
        detail = entry.errors[0] if entry.errors else "no reason recorded"
        return f"The session ended before a reply to the message ({detail})."
    return f"Refused: {entry.errors[0] if entry.errors else reply}"
