"""A private rtpengine 10.5 (Debian's ``rtpengine-daemon``), userspace only, and an ng client.

rtpengine is driven over its "ng" control protocol: UDP datagrams of ``<cookie> <bencoded
dict>``, each answered with the same cookie and a bencoded dict whose ``result`` is ``ok``
(or ``pong``, ``error`` with ``error-reason``). ``offer`` and ``answer`` take an SDP and give
it back rewritten so that media flows through rtpengine's own ports; with the ``T.38`` option
(``["force"]`` on an audio offer, ``["decode"]`` on a T.38 offer) one leg is T.38 over UDPTL
and the other G.711 over RTP, and rtpengine's spandsp t38_gateway translates between them.

``--table=-1`` means no kernel forwarding table: every packet is relayed (and transcoded) in
userspace, which is what T.38 gatewaying needs anyway.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.farend.process import (
    LOOPBACK,
    Daemon,
    FarEndError,
    free_port,
    free_port_block,
    wait_until,
)

RTPENGINE = "/usr/bin/rtpengine"

Bencodable = int | str | bytes | Sequence["Bencodable"] | Mapping[str, "Bencodable"]


def bencode(value: Bencodable) -> bytes:
    """Bencode (the ng protocol's encoding): i<n>e, <len>:<bytes>, l...e, d...e (sorted keys)."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans; the ng protocol uses strings or flags")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, Mapping):
        items = sorted((k.encode(), v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    return b"l" + b"".join(bencode(v) for v in value) + b"e"


def bdecode(data: bytes) -> Any:
    """The inverse of ``bencode``; strings come back as str (UTF-8, else latin-1)."""
    value, end = _decode_at(data, 0)
    if end != len(data):
        raise ValueError(f"trailing data after bencoded value at {end}")
    return value


def _decode_at(data: bytes, at: int) -> tuple[Any, int]:
    lead = data[at : at + 1]
    if lead == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if lead == b"l":
        items, at = [], at + 1
        while data[at : at + 1] != b"e":
            item, at = _decode_at(data, at)
            items.append(item)
        return items, at + 1
    if lead == b"d":
        result, at = {}, at + 1
        while data[at : at + 1] != b"e":
            key, at = _decode_at(data, at)
            result[key], at = _decode_at(data, at)
        return result, at + 1
    if lead.isdigit():
        colon = data.index(b":", at)
        size = int(data[at:colon])
        raw = data[colon + 1 : colon + 1 + size]
        if len(raw) != size:
            raise ValueError("bencoded string runs past the end")
        try:
            return raw.decode(), colon + 1 + size
        except UnicodeDecodeError:
            return raw.decode("latin-1"), colon + 1 + size
    raise ValueError(f"not bencode at offset {at}: {lead!r}")


class NgError(FarEndError):
    """rtpengine answered ``result: error``."""


class NgClient:
    """A blocking ng client over UDP: one request, one reply matched by cookie, resent a few
    times (UDP), a guard timeout."""

    def __init__(self, host: str, port: int, *, timeout: float = 2.0, attempts: int = 3) -> None:
        if not host.startswith("127."):
            raise FarEndError(f"ng control stays on loopback, not {host}")
        self.address = (host, port)
        self.timeout = timeout
        self.attempts = attempts
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NgClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(
        self, command: str, options: Mapping[str, Bencodable] | None = None
    ) -> dict[str, Any]:
        """Send ``command`` with ``options`` (ng keys as rtpengine spells them: "call-id",
        "from-tag", "T.38", "ICE", ...); the reply dict. Raises NgError on ``error``."""
        cookie = secrets.token_hex(6).encode()
        message = cookie + b" " + bencode({"command": command, **(options or {})})
        self.sock.settimeout(self.timeout)
        for _ in range(self.attempts):
            self.sock.sendto(message, self.address)
            try:
                while True:
                    data = self.sock.recv(65535)
                    got, _, body = data.partition(b" ")
                    if got == cookie:  # a late answer to an earlier attempt is skipped
                        break
            except TimeoutError:
                continue
            reply: dict[str, Any] | Any = bdecode(body)
            if not isinstance(reply, dict):
                raise FarEndError(f"ng {command}: reply is not a dict: {reply!r}")
            if reply.get("result") == "error":
                raise NgError(f"ng {command}: {reply.get('error-reason', reply)}")
            return reply
        raise FarEndError(f"ng {command}: no reply from {self.address} in {self.attempts} tries")

    def ping(self) -> str:
        return str(self.request("ping")["result"])

    def offer(self, sdp: str, call_id: str, from_tag: str, **options: Bencodable) -> dict[str, Any]:
        """``offer`` for the caller's SDP; the reply (``reply["sdp"]`` goes to the callee).
        Keyword options use ng key names with ``_`` for ``-`` and ``T38`` for ``T.38``."""
        return self.request(
            "offer", {"sdp": sdp, "call-id": call_id, "from-tag": from_tag, **_ng_keys(options)}
        )

    def answer(
        self, sdp: str, call_id: str, from_tag: str, to_tag: str, **options: Bencodable
    ) -> dict[str, Any]:
        """``answer`` for the callee's SDP; the reply (``reply["sdp"]`` goes to the caller)."""
        fields = {"sdp": sdp, "call-id": call_id, "from-tag": from_tag, "to-tag": to_tag}
        return self.request("answer", {**fields, **_ng_keys(options)})

    def delete(self, call_id: str, from_tag: str, to_tag: str | None = None) -> dict[str, Any]:
        fields: dict[str, Bencodable] = {"call-id": call_id, "from-tag": from_tag}
        if to_tag is not None:
            fields["to-tag"] = to_tag
        return self.request("delete", fields)

    def query(self, call_id: str) -> dict[str, Any]:
        return self.request("query", {"call-id": call_id})


def _ng_keys(options: Mapping[str, Bencodable]) -> dict[str, Bencodable]:
    renamed = {"T38": "T.38", "transport_protocol": "transport protocol"}
    return {renamed.get(k, k.replace("_", "-")): v for k, v in options.items()}


@dataclass
class Rtpengine:
    """A running private rtpengine: its ng address and its media port range."""

    host: str
    ng_port: int
    port_min: int
    port_max: int
    directory: Path
    daemon: Daemon

    def client(self, timeout: float = 2.0) -> NgClient:
        return NgClient(self.host, self.ng_port, timeout=timeout)

    def log_text(self) -> str:
        return self.daemon.log_text()

    def stop(self) -> None:
        self.daemon.stop()


def _pong(host: str, port: int) -> bool:
    try:
        with NgClient(host, port, timeout=0.2, attempts=1) as ng:
            return ng.ping() == "pong"
    except FarEndError:
        return False


@contextmanager
def running_rtpengine(
    directory: Path, *, media_ports: int = 40, log_level: int = 6, start_timeout: float = 20.0
) -> Iterator[Rtpengine]:
    """Start a private userspace rtpengine on 127.0.0.1 with its own ng port and ``media_ports``
    media ports, wait until it answers ping, and stop it when the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    ng_port = free_port(("udp",))
    port_min = free_port_block(media_ports, protos=("udp",), even=True)
    port_max = port_min + media_ports - 1
    argv = [
        RTPENGINE,
        "--config-file=none",  # never /etc/rtpengine/rtpengine.conf
        "--table=-1",  # no kernel module: userspace forwarding only
        f"--interface={LOOPBACK}",
        f"--listen-ng={LOOPBACK}:{ng_port}",
        f"--port-min={port_min}",
        f"--port-max={port_max}",
        "--foreground",
        "--log-stderr",
        f"--log-level={int(log_level)}",
        "--num-threads=2",
        "--delete-delay=0",
        "--timeout=60",
    ]
    daemon = Daemon("rtpengine", argv, directory / "rtpengine.log", directory)
    daemon.start()
    try:
        wait_until(
            lambda: _pong(LOOPBACK, ng_port),
            timeout=start_timeout,
            what="pong to ng ping",
            daemon=daemon,
        )
        yield Rtpengine(LOOPBACK, ng_port, port_min, port_max, directory, daemon)
    finally:
        daemon.stop()
