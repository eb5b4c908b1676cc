"""The smtplog's reasons in plain words, from the reply the gateway sent."""

from __future__ import annotations

import pytest

from gateway.console.reasons import reason
from gateway.models import SmtpLogEntry


@pytest.mark.parametrize(
    ("code", "reply", "errors", "words"),
    [
        (250, "250 2.0.0 queued as abc", [], "Accepted"),
        (550, "550 5.7.1 sender a@b.test is not permitted", [], "not on this faxbox's list"),
        (550, "550 5.7.1 relaying denied: x.test", [], "not a faxbox of this gateway"),
        (554, "554 5.6.0 a.pdf: the PDF is encrypted", [], "The PDF is encrypted"),
        (
            554,
            "554 5.6.1 a.docx: office documents need LibreOffice on this gateway",
            [],
            "need LibreOffice",
        ),
        (554, "554 5.6.3 body.txt: no font draws U+E000", [], "no installed font"),
        (550, "550 5.1.1 not a number", [], "no fax number"),
        (451, "451 4.3.2 office conversions busy; try again later", [], "too busy"),
        (None, None, ["client disconnected during DATA"], "client disconnected during DATA"),
    ],
)
def test_a_reply_reads_as_a_sentence(
    code: int | None, reply: str | None, errors: list[str], words: str
) -> None:
    entry = SmtpLogEntry("id", 0.0, reply_code=code, reply_text=reply, errors=errors)
    assert words in reason(entry)
