"""A noisy analogue line: loss plus white Gaussian noise, applied to 20 ms sample blocks.

spandsp's real line models (``one_way_line_model_init`` and friends) live in its test library
(libspandsp-sim), which Debian does not ship, so this is the simple model they are built on:
the signal is attenuated by a long subscriber loop and spandsp's own ``awgn`` generator adds
noise. The noise must stay below the modems' carrier-detect threshold (about -45 dBm0) or a
receiver believes the carrier never drops and T.30 stalls; hence the loss, which brings the
signal down to where an SNR of 10-20 dB is still quiet enough for carrier detection.
"""

from __future__ import annotations

from typing import Any

from gateway.transports.spandsp import SAMPLE_RATE, awgn_table

TX_LEVEL_DBM0 = -14.0  # spandsp's default transmit level for the fax modems
LOSS_DIVISOR = 20  # integer division by 20 = 26 dB of loop loss, cheap in pure Python
LOSS_DB = 26.0
_TABLE = 2 * SAMPLE_RATE  # two seconds of noise, cycled


class NoisyLine:
    """One direction of a noisy line. ``apply`` rewrites a ctypes int16 block in place."""

    def __init__(self, snr_db: float, seed: int) -> None:
        level = TX_LEVEL_DBM0 - LOSS_DB - snr_db
        # snr_db >= 9 keeps the noise under -49 dBm0 (|n| << 1000), and the attenuated signal
        # is under 1640, so the sum never leaves int16: no per-sample clipping needed.
        self._noise = awgn_table(seed, level, _TABLE)
        self._pos = 0

    def apply(self, block: Any, samples: int) -> None:
        start = self._pos
        self._pos = (start + samples) % (_TABLE - samples)
        noise = self._noise[start : start + samples]
        block[:samples] = [
            x // LOSS_DIVISOR + n for x, n in zip(block[:samples], noise, strict=True)
        ]
