"""What a SIP call came to, in the terms of the retry policy and of ``tx_result``/``rx_result``.

A call that never reached T.30 carries the negated Q.850 cause that RFC 3398 §8.2.6.1 gives for
its SIP status as ``result_code`` (what a PSTN gateway would have reported), and a failure
class from the issue's table: 486/600 busy; 408/480/487 and the ring timeout no answer;
404/484/604/403 permanent (and 410 Gone, 485 Ambiguous, which RFC 3398 maps to the same
"unallocated number" causes as 404); every other status, a timeout or a transport error a line
failure, retried soon: a retry is bounded by the fax's attempts, a fax failed for good is not.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.transports.base import FailureClass, ReceivedFax, TxResult
from gateway.transports.media import FaxOutcome

BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480, 487})
PERMANENT = frozenset({403, 404, 410, 484, 485, 604})

# RFC 3398 §8.2.6.1: SIP status -> Q.850 cause; statuses it does not list are cause 31
# (normal, unspecified) for 4xx and 6xx, 41 (temporary failure) for 5xx.
_Q850 = {
    400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21, 408: 102, 410: 22,
    413: 127, 414: 127, 415: 79, 416: 127, 420: 127, 421: 127, 423: 127, 480: 18, 481: 41,
    482: 25, 483: 25, 484: 28, 485: 1, 486: 17, 487: 127, 488: 127, 500: 41, 501: 79, 502: 38,
    503: 41, 504: 102, 505: 127, 513: 127, 600: 17, 603: 21, 604: 1, 606: 58,
}  # fmt: skip
CAUSE_NO_CIRCUIT = 34  # "no circuit/channel available": all our lines busy, no RTP port
CAUSE_TEMPORARY = 41  # "temporary failure": the trunk did not answer or could not be reached
CAUSE_TIMER_EXPIRY = 102  # "recovery on timer expiry": no final response to our INVITE


def failure_class(status: int) -> FailureClass:
    """The failure class of a final status >= 300 to our INVITE."""
    if status in BUSY:
        return FailureClass.BUSY
    if status in NO_ANSWER:
        return FailureClass.NO_ANSWER
    if status in PERMANENT:
        return FailureClass.PERMANENT
    return FailureClass.LINE


def q850_cause(status: int) -> int:
    return _Q850.get(status, CAUSE_TEMPORARY if 500 <= status < 600 else 31)


def no_call(
    failure: FailureClass,
    cause: int,
    text: str,
    *,
    sip_code: int | None = None,
    seconds: float = 0.0,
) -> TxResult:
    """A call that never reached T.30: refused, unanswered, unreachable, or never placed."""
    return TxResult(
        success=False,
        failure_class=failure,
        result_code=-cause,
        result_text=text,
        error_message=text,
        pages_sent=0,
        fax_speed=0,
        fax_error_correction=False,
        fax_receiver_id=None,
        fax_bad_rows=0,
        line_seconds=round(seconds, 2),
        sip_code=sip_code,
    )


def rejected(status: int, reason: str | None, seconds: float) -> TxResult:
    """Our INVITE got the final ``status`` (>= 300): the far end's own words in the text."""
    phrase = (reason or "").strip() or "no reason given"
    return no_call(
        failure_class(status),
        q850_cause(status),
        f"SIP {status} {phrase}",
        sip_code=status,
        seconds=seconds,
    )


def answered(outcome: FaxOutcome, *, media: str, seconds: float) -> TxResult:
    """An answered call: T.30's outcome as the loopback line maps it, with the SIP figures."""
    return replace(outcome.tx_result(), sip_code=200, media=media, line_seconds=round(seconds, 2))


def media_failed(error: BaseException, *, media: str | None, seconds: float) -> TxResult:
    """The call was answered but its media broke (an exception from ``CallMedia.done``)."""
    result = no_call(
        FailureClass.LINE, CAUSE_TEMPORARY, f"fax media failed: {error}", seconds=seconds
    )
    return replace(result, sip_code=200, media=media)


def received_fax(
    outcome: FaxOutcome | None, tiff: bytes, failure: str | None = None
) -> ReceivedFax:
    """``rx_result``'s figures of an inbound call; ``outcome`` None when no T.30 ever ran (the
    caller hung up first, the media could not start): ``failure`` says why."""
    if outcome is None:
        return ReceivedFax(
            tiff=b"",
            pages=0,
            remote_tsi=None,
            success=False,
            result_text=failure or "no fax was received",
            fax_speed=0,
            fax_error_correction=False,
            fax_bad_rows=0,
        )
    pages = outcome.pages_received
    text = outcome.result_text if failure is None else f"{outcome.result_text} ({failure})"
    return ReceivedFax(
        tiff=tiff if pages else b"",
        pages=pages,
        remote_tsi=outcome.remote_ident,
        success=outcome.success and pages > 0,
        result_text=text,
        fax_speed=outcome.bit_rate,
        fax_error_correction=outcome.ecm,
        fax_bad_rows=outcome.bad_rows,
    )
