"""ctypes binding to libspandsp 0.0.6 (ABI mode): the only module that loads the library.

It wraps just what a back-to-back T.30 session needs: an analogue fax endpoint (``fax_state_t``
and its ``t30_state_t``), its identities, files and capabilities, the 8 kHz audio pump, the
phase D/E callbacks and the transfer statistics. Struct layouts and constants are copied from
the 0.0.6 headers (``spandsp/t30.h``, ``t30_api.h``, ``fax.h``); newer releases moved fields.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from gateway.errors import TransmitError
from gateway.transports.base import FailureClass

SAMPLE_RATE = 8000

# t30.h: T30_SUPPORT_* bit sets.
SUPPORT_V27TER = 0x01
SUPPORT_V29 = 0x02
SUPPORT_V17 = 0x04
SUPPORT_T4_1D = 0x02
SUPPORT_T4_2D = 0x04
SUPPORT_T6 = 0x08

_LIBRARY_NAMES = ("libspandsp.so.2", "spandsp")


class T30Stats(ctypes.Structure):
    """``t30_stats_t`` as 0.0.6 lays it out: fifteen ints (rtp/rtn events are ``#if 0``)."""

    _fields_ = [
        ("bit_rate", ctypes.c_int),
        ("error_correcting_mode", ctypes.c_int),
        ("pages_tx", ctypes.c_int),
        ("pages_rx", ctypes.c_int),
        ("pages_in_file", ctypes.c_int),
        ("x_resolution", ctypes.c_int),
        ("y_resolution", ctypes.c_int),
        ("width", ctypes.c_int),
        ("length", ctypes.c_int),
        ("image_size", ctypes.c_int),
        ("encoding", ctypes.c_int),
        ("bad_rows", ctypes.c_int),
        ("longest_bad_row_run", ctypes.c_int),
        ("error_correcting_mode_retries", ctypes.c_int),
        ("current_status", ctypes.c_int),
    ]


# typedef void (t30_phase_e_handler_t)(t30_state_t *s, void *user_data, int completion_code);
PHASE_E_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
# typedef int (t30_phase_d_handler_t)(t30_state_t *s, void *user_data, int result);
PHASE_D_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)

_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "fax_init": (_P, [_P, _I]),
    "fax_get_t30_state": (_P, [_P]),
    "fax_set_transmit_on_idle": (None, [_P, _I]),
    "fax_tx": (_I, [_P, ctypes.POINTER(ctypes.c_int16), _I]),
    "fax_rx": (_I, [_P, ctypes.POINTER(ctypes.c_int16), _I]),
    "fax_release": (_I, [_P]),
    "fax_free": (_I, [_P]),
    "t30_set_tx_ident": (_I, [_P, _S]),
    "t30_get_rx_ident": (_S, [_P]),
    "t30_set_tx_page_header_info": (_I, [_P, _S]),
    "t30_set_tx_page_header_tz": (_I, [_P, _S]),
    "t30_set_tx_file": (None, [_P, _S, _I, _I]),
    "t30_set_rx_file": (None, [_P, _S, _I]),
    "t30_set_ecm_capability": (_I, [_P, _I]),
    "t30_set_supported_modems": (_I, [_P, _I]),
    "t30_set_supported_compressions": (_I, [_P, _I]),
    "t30_set_phase_d_handler": (None, [_P, PHASE_D_HANDLER, _P]),
    "t30_set_phase_e_handler": (None, [_P, PHASE_E_HANDLER, _P]),
    "t30_get_transfer_statistics": (None, [_P, ctypes.POINTER(T30Stats)]),
    "t30_completion_code_to_str": (_S, [_I]),
    "t30_terminate": (None, [_P]),
    "awgn_init_dbm0": (_P, [_P, _I, ctypes.c_float]),
    "awgn": (ctypes.c_int16, [_P]),
    "awgn_free": (_I, [_P]),
}


@cache
def library() -> ctypes.CDLL:
    """Load libspandsp once per process, with argument types declared for every call we make."""
    path = ctypes.util.find_library("spandsp")
    errors: list[str] = []
    for name in (path, *_LIBRARY_NAMES):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        raise TransmitError(FailureClass.LINE, "libspandsp2 cannot be loaded: " + "; ".join(errors))
    for fname, (restype, argtypes) in _SIGNATURES.items():
        func = getattr(lib, fname)
        func.restype = restype
        func.argtypes = argtypes
    return lib


def completion_text(code: int) -> str:
    raw = library().t30_completion_code_to_str(code)
    return raw.decode("ascii", "replace") if raw else f"T.30 completion code {code}"


def _ascii(text: str, limit: int) -> bytes:
    """T.30 idents are at most 20 printable ASCII chars; header info at most 50."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return cleaned[:limit].encode("ascii")


@dataclass(frozen=True)
class Stats:
    bit_rate: int
    ecm: bool
    pages_tx: int
    pages_rx: int
    bad_rows: int
    status: int


class FaxEndpoint:
    """One analogue fax machine: a ``fax_state_t`` with its T.30 engine.

    The ctypes callbacks are stored on the instance so they outlive every call the C side can
    make into them. ``close()`` (or leaving a ``with`` block) frees the C state; it is idempotent.
    """

    def __init__(self, *, calling: bool) -> None:
        self._lib = library()
        self._fax: int | None = self._lib.fax_init(None, 1 if calling else 0)
        if not self._fax:
            raise TransmitError(FailureClass.LINE, "fax_init failed")
        self._t30 = self._lib.fax_get_t30_state(self._fax)
        self.completion: int | None = None
        self.pages_confirmed = 0  # phase D events seen
        self.on_phase_d: Callable[[int], None] | None = None
        self._phase_e = PHASE_E_HANDLER(self._handle_phase_e)
        self._phase_d = PHASE_D_HANDLER(self._handle_phase_d)
        self._lib.t30_set_phase_e_handler(self._t30, self._phase_e, None)
        self._lib.t30_set_phase_d_handler(self._t30, self._phase_d, None)
        # Without transmit-on-idle fax_tx returns short blocks when silent; we want full 20 ms.
        self._lib.fax_set_transmit_on_idle(self._fax, 1)
        self._lib.t30_set_ecm_capability(self._t30, 1)
        self._lib.t30_set_supported_modems(self._t30, SUPPORT_V27TER | SUPPORT_V29 | SUPPORT_V17)
        self._lib.t30_set_supported_compressions(
            self._t30, SUPPORT_T4_1D | SUPPORT_T4_2D | SUPPORT_T6
        )

    # -- configuration ------------------------------------------------------------------------
    def set_ident(self, ident: str) -> None:
        self._lib.t30_set_tx_ident(self._t30, _ascii(ident, 20))

    def set_page_header(self, info: str, posix_tz: str) -> None:
        self._lib.t30_set_tx_page_header_info(self._t30, _ascii(info, 50))
        self._lib.t30_set_tx_page_header_tz(self._t30, posix_tz.encode("ascii"))

    def set_tx_file(self, path: str) -> None:
        self._lib.t30_set_tx_file(self._t30, path.encode(), -1, -1)

    def set_rx_file(self, path: str) -> None:
        self._lib.t30_set_rx_file(self._t30, path.encode(), -1)

    # -- audio --------------------------------------------------------------------------------
    def tx(self, buf: Any, samples: int) -> int:
        return int(self._lib.fax_tx(self._fax, buf, samples))

    def rx(self, buf: Any, samples: int) -> None:
        self._lib.fax_rx(self._fax, buf, samples)

    # -- results ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.completion is not None

    def terminate(self) -> None:
        """The call is gone (hang-up): let T.30 close its files and report phase E."""
        self._lib.t30_terminate(self._t30)

    def remote_ident(self) -> str | None:
        raw = self._lib.t30_get_rx_ident(self._t30)
        text = raw.decode("ascii", "replace").strip() if raw else ""
        return text or None

    def stats(self) -> Stats:
        st = T30Stats()
        self._lib.t30_get_transfer_statistics(self._t30, ctypes.byref(st))
        return Stats(
            bit_rate=st.bit_rate,
            ecm=bool(st.error_correcting_mode),
            pages_tx=st.pages_tx,
            pages_rx=st.pages_rx,
            bad_rows=st.bad_rows,
            status=st.current_status,
        )

    def __enter__(self) -> FaxEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fax:
            self._lib.fax_release(self._fax)
            self._lib.fax_free(self._fax)
            self._fax = None

    # -- callbacks (run on the calling thread, inside fax_tx/fax_rx) ---------------------------
    def _handle_phase_e(self, _t30: int | None, _user: int | None, code: int) -> None:
        self.completion = code

    def _handle_phase_d(self, _t30: int | None, _user: int | None, result: int) -> int:
        self.pages_confirmed += 1
        if self.on_phase_d is not None:
            self.on_phase_d(result)
        return 0  # T30_ERR_OK: carry on


def awgn_table(seed: int, level_dbm0: float, samples: int) -> list[int]:
    """Gaussian noise from spandsp's own generator (the one its line models use)."""
    lib = library()
    state = lib.awgn_init_dbm0(None, seed, ctypes.c_float(level_dbm0))
    try:
        return [lib.awgn(state) for _ in range(samples)]
    finally:
        lib.awgn_free(state)
