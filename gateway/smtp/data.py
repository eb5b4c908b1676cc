"""The DATA phase of aiosmtpd's SMTP protocol, read in bulk instead of line by line.

aiosmtpd reads message data one line at a time: a 25 MiB attachment is some 340,000 trips
through its Python loop, on the event loop. This reader takes the same bytes in large chunks
(a search for the end-of-data line done by the stream in C) and keeps aiosmtpd's rules, with
lines ending at LF as real mail has them (scripts and scanners send bare LF line ends):

- a line ends at LF (CRLF or a bare LF); a lone CR inside a line is data;
- only a "." line after a CRLF, that is CRLF "." CRLF, ends the data: LF "." LF, CR "." CR and
  LF "." CRLF stay data, so no command can be smuggled behind a false end (RFC 5321 2.3.8);
- a leading "." is removed from every line (RFC 5321 4.5.2), as clients stuff it;
- bare LF line ends become CRLF in the content (RFC 5322), or, with ``bare_lf = "reject"``,
  the message is refused after its end (as Postfix's ``smtpd_forbid_bare_newline``);
- more than ``data_size_limit`` bytes (as sent) give ``552``, a line longer than
  ``line_length_limit`` (its line end included) gives ``500``, both after the end of data;
- the bytes after the end-of-data line (pipelined commands) stay in the stream.

tests/test_smtp_data.py compares it with aiosmtpd's own reader and with a line-by-line model.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Literal

from aiosmtpd.smtp import MISSING, SMTP, syntax

_END = b".\r\n"  # the end-of-data line, when it starts a line after a CRLF
_CRLF = b"\r\n"
_LF = b"\n"
BARE_LF_REFUSED = "550 5.6.2 Message refused: bare LF line ends (lines must end with CRLF)"


class _State(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()
    TOO_MUCH = enum.auto()
    BARE_LF = enum.auto()


class BulkDataSMTP(SMTP):
    # "accept": bare LF line ends become CRLF; "reject": the message gets BARE_LF_REFUSED.
    bare_lf: Literal["accept", "reject"] = "accept"

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            state, content = await self._read_data()
        except asyncio.CancelledError:
            self._writer.close()  # the connection went away during DATA, as aiosmtpd does
            raise
        bare_lf = state is _State.NOMINAL and _has_bare_lf(content)
        if bare_lf and self.bare_lf == "reject":
            state = _State.BARE_LF
        if state is not _State.NOMINAL:
            await self.push(_REFUSALS[state])
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if bare_lf:
            content = _crlf(content)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[_State, bytes]:
        """The data up to its end, unstuffed, with its line ends as sent."""
        reader: asyncio.StreamReader = self._reader
        limit = self.data_size_limit
        line_limit = self.line_length_limit
        data = bytearray()
        state = _State.NOMINAL
        size = 0  # bytes of data so far, as sent (stuffing dots and line ends included)
        line = 0  # length of the line being read, up to here
        after_crlf = True  # does the next byte begin a line that follows a CRLF?
        carry = b""  # a CR cut off at a chunk's end: it may be half of a CRLF
        while True:
            try:
                chunk = carry + await reader.readuntil(_END)
            except asyncio.LimitOverrunError as exc:  # no ".\r\n" within the buffer limit
                chunk = carry + await reader.read(exc.consumed)
            except asyncio.IncompleteReadError:
                raise asyncio.CancelledError from None  # EOF: the client is gone
            carry = b""
            if chunk.endswith(_END) and (
                chunk[-5:-3] == _CRLF if len(chunk) >= 5 else len(chunk) == 3 and after_crlf
            ):
                body, done = chunk[:-3], True  # the end-of-data line itself is not data
            elif chunk.endswith(b"\r"):
                body, carry, done = chunk[:-1], b"\r", False
            else:
                body, done = chunk, False
            size += len(body)
            if state is _State.NOMINAL and limit and size > limit:
                state = _State.TOO_MUCH
                data.clear()
            if state is _State.NOMINAL:
                line, too_long = _longest(body, line, line_limit)
                if too_long:
                    state = _State.TOO_LONG
                    data.clear()
                else:
                    data += body
            if done:
                break
            if body:
                after_crlf = body.endswith(_CRLF)
        if state is not _State.NOMINAL:
            return state, b""
        return state, _unstuff(bytes(data))


_REFUSALS = {
    _State.TOO_LONG: "500 Line too long (see RFC5321 4.5.3.1.6)",
    _State.TOO_MUCH: "552 Error: Too much mail data",
    _State.BARE_LF: BARE_LF_REFUSED,
}


def _longest(chunk: bytes, line: int, limit: int) -> tuple[int, bool]:
    """Track line lengths (line end included) across chunks: (length of the open line, too
    long?). A line ends at LF, as aiosmtpd's command lines do."""
    if line + len(chunk) + 1 <= limit:  # no line in here can be too long: skip the split
        end = chunk.rfind(_LF)
        return (line + len(chunk) if end < 0 else len(chunk) - end - 1), False
    pieces = chunk.split(_LF)
    if len(pieces) == 1:
        line += len(chunk)
        return line, line > limit  # an unfinished line already over the limit
    first = line + len(pieces[0]) + 1
    inner = max(map(len, pieces[1:-1]), default=-1) + 1
    last = len(pieces[-1])
    return last, max(first, inner, last) > limit


def _unstuff(data: bytes) -> bytes:
    """Remove the "." that the client put before every line starting with one."""
    data = data.replace(b"\n.", _LF)
    return data[1:] if data.startswith(b".") else data


def _has_bare_lf(data: bytes) -> bool:
    return data.count(_LF) != data.count(_CRLF)  # two counts in C: no copy in the usual case


def _crlf(data: bytes) -> bytes:
    """Bare LF line ends as CRLF; CRLF and lone CRs as they are."""
    return data.replace(_CRLF, _LF).replace(_LF, _CRLF)
