"""T.30 completion code -> failure class: whether, and how soon, an attempt is worth retrying.

Codes are the 0.0.6 ``T30_ERR_*`` enum. The rule of thumb: if the far end told us it cannot
take this document (capabilities, identity, our own file), retrying will not help (PERMANENT);
if the far end never spoke T.30 to us, treat it like a call nobody answered (NO_ANSWER); any
other breakdown of the line or the protocol is worth a quick retry (LINE).
"""

from __future__ import annotations

from gateway.transports.base import FailureClass

OK = 0
# Timed out before the remote sent its first T.30 frame: a voice line or a dead fax.
_NO_FAX_ANSWER = frozenset({2, 3})  # T0_EXPIRED, T1_EXPIRED
_PERMANENT = frozenset(
    {
        8,  # INCOMPATIBLE: far end is not compatible
        9,  # RX_INCAPABLE: far end is not able to receive
        10,  # TX_INCAPABLE
        11,  # NORESSUPPORT: far end cannot receive at the resolution of the image
        12,  # NOSIZESUPPORT: far end cannot receive at the size of the image
        41,  # FILEERROR: our TIFF cannot be opened
        42,  # NOPAGE
        43,  # BADTIFF
        44,  # BADPAGE
        45,  # BADTAG
        46,  # BADTIFFHDR
        50,  # NOPOLL
        *range(51, 62),  # *_UNACCEPTABLE: the far end refused our identification
    }
)

# Calls that never reach T.30 carry a negated Q.850 cause instead of a T.30 code.
CAUSE_UNALLOCATED = -1  # "unallocated (unassigned) number": the number does not exist
CAUSE_USER_BUSY = -17
CAUSE_NO_ANSWER = -19


def classify(code: int) -> FailureClass | None:
    """None for success; otherwise the class the retry policy keys its delay on."""
    if code == OK:
        return None
    if code == CAUSE_USER_BUSY:
        return FailureClass.BUSY
    if code == CAUSE_UNALLOCATED:
        return FailureClass.PERMANENT
    if code == CAUSE_NO_ANSWER or code in _NO_FAX_ANSWER:
        return FailureClass.NO_ANSWER
    if code in _PERMANENT:
        return FailureClass.PERMANENT
    return FailureClass.LINE
