"""The DATA phase of aiosmtpd's SMTP protocol, read in bulk instead of line by line.

aiosmtpd reads message data one line at a time: a 25 MiB attachment is some 340,000 trips
through its Python loop, on the event loop. This reader takes the same bytes in large chunks
(a search for the end-of-data line done by the stream in C) and keeps aiosmtpd's rules
exactly: lines end only at CRLF (no SMTP smuggling with bare LF or CR), a line holding a single
"." ends the data, a leading "." is removed from every line (RFC 5321 4.5.2), more than
``data_size_limit`` bytes give ``552`` and a line longer than ``line_length_limit`` gives
``500``, both only after the end of data; the bytes after the end-of-data line (pipelined
commands) stay in the stream. tests/test_smtp_data.py compares it with aiosmtpd's own reader.
"""

from __future__ import annotations

import asyncio
import enum

from aiosmtpd.smtp import MISSING, SMTP, syntax

_END = b".\r\n"  # the end-of-data line, when it starts a line
_CRLF = b"\r\n"


class _State(enum.Enum):
    NOMINAL = enum.auto()
    TOO_LONG = enum.auto()
    TOO_MUCH = enum.auto()


class BulkDataSMTP(SMTP):
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
        if state is _State.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
        elif state is _State.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
        if state is not _State.NOMINAL:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[_State, bytes]:
        reader: asyncio.StreamReader = self._reader
        limit = self.data_size_limit
        line_limit = self.line_length_limit
        data = bytearray()
        state = _State.NOMINAL
        size = 0  # bytes of data so far, as sent (stuffing dots and CRLFs included)
        line = 0  # length of the line being read, up to here
        at_line_start = True  # does the next byte begin a line?
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
                chunk[-5:-3] == _CRLF if len(chunk) >= 5 else len(chunk) == 3 and at_line_start
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
                at_line_start = body.endswith(_CRLF)
        if state is not _State.NOMINAL:
            return state, b""
        return state, _unstuff(bytes(data))


def _longest(chunk: bytes, line: int, limit: int) -> tuple[int, bool]:
    """Track line lengths (CRLF included) across chunks: (length of the open line, too long?)."""
    if line + len(chunk) + 2 <= limit:  # no line in here can be too long: skip the split
        end = chunk.rfind(_CRLF)
        return (line + len(chunk) if end < 0 else len(chunk) - end - 2), False
    pieces = chunk.split(_CRLF)
    if len(pieces) == 1:
        line += len(chunk)
        return line, line > limit  # an unfinished line already over the limit
    first = line + len(pieces[0]) + 2
    inner = max(map(len, pieces[1:-1]), default=-2) + 2
    last = len(pieces[-1])
    return last, max(first, inner, last) > limit


def _unstuff(data: bytes) -> bytes:
    """Remove the "." that the client put before every line starting with one."""
    data = data.replace(b"\r\n.", b"\r\n")
    return data[1:] if data.startswith(b".") else data
