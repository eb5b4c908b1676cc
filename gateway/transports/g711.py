"""G.711 conversion and modem connect tone detection, in libspandsp (loaded by ``spandsp``).

Both run in C over whole frames: no per-sample Python and no ``audioop`` (deprecated, gone in
Python 3.13). ``media.AudioFaxEndpoint`` is their user.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import TransmitError
from gateway.transports.base import FailureClass
from gateway.transports.spandsp import G711Law, Tone, library


class G711:
    """A G.711 codec (stateless in spandsp, but it has an init/free pair all the same)."""

    def __init__(self, law: G711Law) -> None:
        self._lib = library()
        self.law = law
        self._state: int | None = self._lib.g711_init(None, int(law))
        if not self._state:
            raise TransmitError(FailureClass.LINE, "g711_init failed")

    def encode(self, amp: Any, samples: int, out: Any) -> int:
        """``samples`` linear samples from ``amp`` into the octet buffer ``out``."""
        if not self._state:
            raise RuntimeError("the G.711 state is closed")
        return int(self._lib.g711_encode(self._state, out, amp, samples))

    def decode(self, payload: bytes, amp: Any) -> int:
        """Octets to linear samples in ``amp`` (which must hold ``len(payload)``)."""
        if not self._state:
            raise RuntimeError("the G.711 state is closed")
        return int(self._lib.g711_decode(self._state, amp, payload, len(payload)))

    def close(self) -> None:
        if self._state:
            self._lib.g711_free(self._state)
            self._state = None


class ToneDetector:
    """spandsp's modem connect tone detector for one kind of tone, polled (no callback)."""

    def __init__(self, tone: Tone) -> None:
        self._lib = library()
        self.tone = tone
        self._state: int | None = self._lib.modem_connect_tones_rx_init(None, int(tone), None, None)
        if not self._state:
            raise TransmitError(FailureClass.LINE, "modem_connect_tones_rx_init failed")

    def feed(self, amp: Any, samples: int) -> Tone:
        """Listen to a block; the tone that began in it, else ``Tone.NONE``."""
        if not self._state:
            raise RuntimeError("the tone detector is closed")
        self._lib.modem_connect_tones_rx(self._state, amp, samples)
        return Tone(self._lib.modem_connect_tones_rx_get(self._state))

    def close(self) -> None:
        if self._state:
            self._lib.modem_connect_tones_rx_free(self._state)
            self._state = None
