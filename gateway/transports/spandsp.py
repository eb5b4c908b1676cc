"""ctypes binding to libspandsp 0.0.6 (ABI mode): the only module that loads the library.

It wraps what our fax media needs: the T.30 engine (identities, header, files, capabilities,
phase D/E callbacks, transfer statistics) behind either an analogue fax endpoint
(``fax_state_t``: 8 kHz audio in and out) or a T.38 terminal (``t38_terminal_state_t``: IFP
packets in and out, driven by a sample clock). Every function we call is declared here, also
those ``g711`` wraps (G.711 A-law/u-law conversion, the modem connect tone detector for CNG,
CED and V.21 preamble). Signatures, struct layouts and constants are those of Debian's 0.0.6
headers (``spandsp/t30.h``, ``t30_api.h``, ``fax.h``, ``t38_core.h``, ``t38_terminal.h``,
``g711.h``, ``modem_connect_tones.h``); newer releases changed several. Every state is
allocated by spandsp itself (``*_init(NULL, ...)``), so we never need the size of a private
struct.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from typing import Any

from gateway.errors import TransmitError
from gateway.transports.base import FailureClass

SAMPLE_RATE = 8000

# t30.h: T30_SUPPORT_* bit sets.
SUPPORT_V27TER = 0x01
SUPPORT_V29 = 0x02
SUPPORT_V17 = 0x04
SUPPORT_IAF = 0x10  # set by t38_terminal_init; 0.0.6's t30.c never reads it
SUPPORT_T4_1D = 0x02
SUPPORT_T4_2D = 0x04
SUPPORT_T6 = 0x08
ALL_MODEMS = SUPPORT_V27TER | SUPPORT_V29 | SUPPORT_V17
ALL_COMPRESSIONS = SUPPORT_T4_1D | SUPPORT_T4_2D | SUPPORT_T6

# t38_core.h: T38_DATA_RATE_MANAGEMENT_* (Asterisk's gateway passes these inverted: we do not).
RATE_LOCAL_TCF = 1
RATE_TRANSFERRED_TCF = 2
# t38_terminal.h: T38_TERMINAL_OPTION_* for t38_terminal_set_config.
T38_OPTION_NO_PACING = 0x01
T38_OPTION_REGULAR_INDICATORS = 0x02
T38_OPTION_2S_REPEATING_INDICATORS = 0x04
T38_OPTION_NO_INDICATORS = 0x08

_LIBRARY_NAMES = ("libspandsp.so.2", "spandsp")


class G711Law(IntEnum):
    """g711.h: ``G711_ALAW = 0, G711_ULAW = 1`` (the RTP names: PCMA, PCMU)."""

    ALAW = 0
    ULAW = 1


class Tone(IntEnum):
    """modem_connect_tones.h: ``MODEM_CONNECT_TONES_*`` as 0.0.6 numbers them."""

    NONE = 0
    FAX_CNG = 1
    FAX_CED = 2  # MODEM_CONNECT_TONES_ANS: the 2100 Hz answer tone
    ANS_PR = 3  # with phase reversals (V.25)
    ANSAM = 4
    ANSAM_PR = 5
    FAX_PREAMBLE = 6  # V.21 HDLC flags: a fax machine talking T.30
    FAX_CED_OR_PREAMBLE = 7
    BELL_ANS = 8
    CALLING_TONE = 9


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
# typedef int (t38_tx_packet_handler_t)(t38_core_state_t *s, void *user_data,
#                                       const uint8_t *buf, int len, int count);
T38_TX_HANDLER = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int
)

_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p  # also used for const uint8_t * input buffers: bytes pass without a copy
_AMP = ctypes.POINTER(ctypes.c_int16)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "fax_init": (_P, [_P, _I]),
    "fax_get_t30_state": (_P, [_P]),
    "fax_set_transmit_on_idle": (None, [_P, _I]),
    "fax_tx": (_I, [_P, _AMP, _I]),
    "fax_rx": (_I, [_P, _AMP, _I]),
    "fax_rx_fillin": (_I, [_P, _I]),
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
    "t38_terminal_init": (_P, [_P, _I, T38_TX_HANDLER, _P]),
    "t38_terminal_get_t30_state": (_P, [_P]),
    "t38_terminal_get_t38_core_state": (_P, [_P]),
    "t38_terminal_send_timeout": (_I, [_P, _I]),
    "t38_terminal_set_config": (None, [_P, _I]),
    "t38_terminal_set_tep_mode": (None, [_P, _I]),
    "t38_terminal_set_fill_bit_removal": (None, [_P, _I]),
    "t38_terminal_release": (_I, [_P]),
    "t38_terminal_free": (_I, [_P]),
    "t38_core_rx_ifp_packet": (_I, [_P, _S, _I, ctypes.c_uint16]),
    "t38_set_t38_version": (None, [_P, _I]),
    "t38_set_max_buffer_size": (None, [_P, _I]),
    "t38_set_max_datagram_size": (None, [_P, _I]),
    "t38_set_fastest_image_data_rate": (None, [_P, _I]),
    "t38_set_data_rate_management_method": (None, [_P, _I]),
    "t38_set_fill_bit_removal": (None, [_P, _I]),
    "t38_set_mmr_transcoding": (None, [_P, _I]),
    "t38_set_jbig_transcoding": (None, [_P, _I]),
    "g711_init": (_P, [_P, _I]),
    "g711_encode": (_I, [_P, _P, _AMP, _I]),
    "g711_decode": (_I, [_P, _AMP, _S, _I]),
    "g711_release": (_I, [_P]),
    "g711_free": (_I, [_P]),
    "modem_connect_tones_rx_init": (_P, [_P, _I, _P, _P]),
    "modem_connect_tones_rx": (_I, [_P, _AMP, _I]),
    "modem_connect_tones_rx_get": (_I, [_P]),
    "modem_connect_tones_rx_free": (_I, [_P]),
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
class T30Config:
    """Everything we tell a T.30 engine before a call, whichever front end carries it."""

    ident: str = ""  # our TSI (sending) or CSI (receiving)
    header_info: str | None = None  # None: no header line is stamped
    header_tz: str | None = None  # POSIX TZ rule for the header's clock
    tx_file: str | None = None  # TIFF to send
    rx_file: str | None = None  # None: "ready to receive" is left out of our DIS
    ecm: bool = True
    modems: int = ALL_MODEMS
    compressions: int = ALL_COMPRESSIONS


@dataclass(frozen=True)
class Stats:
    bit_rate: int
    ecm: bool
    pages_tx: int
    pages_rx: int
    bad_rows: int
    status: int


class T30Engine:
    """The T.30 engine inside a front end (audio or T.38), with its phase D/E callbacks.

    The ctypes callbacks are stored on the instance so they outlive every call the C side can
    make into them. A Python exception inside a callback never unwinds through C: it is kept
    and raised by ``raise_callback_error`` once control is back in Python. Once the front end
    is closed every method raises ``RuntimeError`` instead of touching freed memory.
    """

    _lib: ctypes.CDLL
    _t30_state: int | None

    @property
    def _t30(self) -> int:
        if not self._t30_state:
            raise RuntimeError("the spandsp state is closed")
        return self._t30_state

    def _attach(self, t30: int) -> None:
        self._t30_state = t30
        self.completion: int | None = None
        self.pages_confirmed = 0  # phase D events seen
        self.on_phase_d: Callable[[int], None] | None = None
        self.callback_error: BaseException | None = None
        self._phase_e = PHASE_E_HANDLER(self._handle_phase_e)
        self._phase_d = PHASE_D_HANDLER(self._handle_phase_d)
        self._lib.t30_set_phase_e_handler(t30, self._phase_e, None)
        self._lib.t30_set_phase_d_handler(t30, self._phase_d, None)
        self._set_capabilities(T30Config())

    def configure(self, config: T30Config) -> None:
        """Identity, header, time zone, files, ECM, modems and compressions, in one place."""
        lib, t30 = self._lib, self._t30
        lib.t30_set_tx_ident(t30, _ascii(config.ident, 20))
        if config.header_info is not None:
            lib.t30_set_tx_page_header_info(t30, _ascii(config.header_info, 50))
            if config.header_tz:
                lib.t30_set_tx_page_header_tz(t30, config.header_tz.encode("ascii"))
        if config.tx_file is not None:
            lib.t30_set_tx_file(t30, config.tx_file.encode(), -1, -1)
        if config.rx_file is not None:
            lib.t30_set_rx_file(t30, config.rx_file.encode(), -1)
        self._set_capabilities(config)

    def _set_capabilities(self, config: T30Config) -> None:
        self._lib.t30_set_ecm_capability(self._t30, int(config.ecm))
        self._lib.t30_set_supported_modems(self._t30, config.modems)
        self._lib.t30_set_supported_compressions(self._t30, config.compressions)

    @property
    def finished(self) -> bool:
        return self.completion is not None

    def terminate(self) -> None:
        """The call is gone (hang-up): let T.30 close its files and report phase E."""
        self._lib.t30_terminate(self._t30)
        self.raise_callback_error()

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

    def raise_callback_error(self) -> None:
        error, self.callback_error = self.callback_error, None
        if error is not None:
            raise error

    # -- callbacks (run on the calling thread, inside a call into spandsp) ----------------------
    def _handle_phase_e(self, _t30: int | None, _user: int | None, code: int) -> None:
        self.completion = code

    def _handle_phase_d(self, _t30: int | None, _user: int | None, result: int) -> int:
        self.pages_confirmed += 1
        if self.on_phase_d is not None:
            try:
                self.on_phase_d(result)
            except BaseException as exc:  # never into C
                self.callback_error = exc
        return 0  # T30_ERR_OK: carry on


class FaxEndpoint(T30Engine):
    """One analogue fax machine: a ``fax_state_t`` with its T.30 engine.

    ``close()`` (or leaving a ``with`` block) frees the C state; it is idempotent.
    """

    def __init__(self, *, calling: bool) -> None:
        self._lib = library()
        self._fax: int | None = self._lib.fax_init(None, 1 if calling else 0)
        if not self._fax:
            raise TransmitError(FailureClass.LINE, "fax_init failed")
        self._attach(self._lib.fax_get_t30_state(self._fax))
        # Without transmit-on-idle fax_tx returns short blocks when silent; we want full 20 ms.
        self._lib.fax_set_transmit_on_idle(self._fax, 1)

    # -- audio --------------------------------------------------------------------------------
    def tx(self, buf: Any, samples: int) -> int:
        if not self._fax:
            raise RuntimeError("the fax state is closed")
        produced = int(self._lib.fax_tx(self._fax, buf, samples))
        if self.callback_error is not None:
            self.raise_callback_error()
        return produced

    def rx(self, buf: Any, samples: int) -> None:
        if not self._fax:
            raise RuntimeError("the fax state is closed")
        self._lib.fax_rx(self._fax, buf, samples)
        if self.callback_error is not None:
            self.raise_callback_error()

    def rx_fillin(self, samples: int) -> None:
        """A lost packet: the receive modem coasts over ``samples`` instead of hearing silence."""
        if not self._fax:
            raise RuntimeError("the fax state is closed")
        self._lib.fax_rx_fillin(self._fax, samples)
        if self.callback_error is not None:
            self.raise_callback_error()

    def __enter__(self) -> FaxEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fax:
            # fax_free releases (t30_release) itself; releasing twice is harmless in 0.0.6.
            self._lib.fax_free(self._fax)
            self._fax = self._t30_state = None


@dataclass(frozen=True)
class T38Settings:
    """What SDP negotiated for the far end (T38Fax* attributes) and how we pace packets."""

    version: int = 0
    max_bit_rate: int = 14400
    rate_management: int = RATE_TRANSFERRED_TCF
    max_buffer: int = 2000
    max_datagram: int = 400  # the far end's T38FaxMaxDatagram (IFP bytes per packet)
    fill_bit_removal: bool = False
    mmr_transcoding: bool = False
    jbig_transcoding: bool = False
    tep: bool = False
    options: int = 0  # T38_OPTION_*; 0 = paced for UDP, as spandsp defaults


class T38Terminal(T30Engine):
    """A T.38 terminal: a ``t38_terminal_state_t``, its T.38 core and its T.30 engine.

    Every IFP the core wants sent goes to ``on_packet(ifp, count)`` (count: how many times
    spandsp would like it repeated). Time only moves through ``send_timeout``.
    """

    def __init__(self, *, calling: bool, on_packet: Callable[[bytes, int], None]) -> None:
        self._lib = library()
        self._on_packet = on_packet
        self._tx_handler = T38_TX_HANDLER(self._handle_tx)
        self._t38: int | None = self._lib.t38_terminal_init(
            None, 1 if calling else 0, self._tx_handler, None
        )
        if not self._t38:
            raise TransmitError(FailureClass.LINE, "t38_terminal_init failed")
        self._core = self._lib.t38_terminal_get_t38_core_state(self._t38)
        self._attach(self._lib.t38_terminal_get_t30_state(self._t38))

    def _set_capabilities(self, config: T30Config) -> None:
        # t38_terminal_init offers IAF along with the modems: keep spandsp's own choice.
        super()._set_capabilities(
            T30Config(
                ecm=config.ecm, modems=config.modems | SUPPORT_IAF, compressions=config.compressions
            )
        )

    def apply(self, settings: T38Settings) -> None:
        lib, t38, core = self._lib, self._t38, self._core
        if not t38:
            raise RuntimeError("the T.38 state is closed")
        lib.t38_terminal_set_config(t38, settings.options)
        lib.t38_terminal_set_tep_mode(t38, int(settings.tep))
        lib.t38_terminal_set_fill_bit_removal(t38, int(settings.fill_bit_removal))
        lib.t38_set_t38_version(core, settings.version)
        lib.t38_set_fastest_image_data_rate(core, settings.max_bit_rate)
        lib.t38_set_data_rate_management_method(core, settings.rate_management)
        lib.t38_set_max_buffer_size(core, settings.max_buffer)
        lib.t38_set_max_datagram_size(core, settings.max_datagram)
        lib.t38_set_fill_bit_removal(core, int(settings.fill_bit_removal))
        lib.t38_set_mmr_transcoding(core, int(settings.mmr_transcoding))
        lib.t38_set_jbig_transcoding(core, int(settings.jbig_transcoding))

    def send_timeout(self, samples: int) -> bool:
        """Advance the clock; True once T.30 is done with the line."""
        if not self._t38:
            raise RuntimeError("the T.38 state is closed")
        done = bool(self._lib.t38_terminal_send_timeout(self._t38, samples))
        if self.callback_error is not None:
            self.raise_callback_error()
        return done

    def rx_ifp(self, seq: int, ifp: bytes) -> bool:
        """One received IFP with its UDPTL sequence number; False if the core rejected it."""
        if not self._t38:
            raise RuntimeError("the T.38 state is closed")
        ok: bool = self._lib.t38_core_rx_ifp_packet(self._core, ifp, len(ifp), seq & 0xFFFF) == 0
        if self.callback_error is not None:
            self.raise_callback_error()
        return ok

    def __enter__(self) -> T38Terminal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._t38:
            self._lib.t38_terminal_free(self._t38)  # t38_terminal_free releases it first
            self._t38 = self._core = self._t30_state = None

    def _handle_tx(
        self, _core: int | None, _user: int | None, buf: int | None, n: int, count: int
    ) -> int:
        try:
            self._on_packet(ctypes.string_at(buf, n) if buf and n > 0 else b"", count)
        except BaseException as exc:  # never into C; -1 makes T.30 give up the call
            self.callback_error = exc
            return -1
        return 0


def awgn_table(seed: int, level_dbm0: float, samples: int) -> list[int]:
    """Gaussian noise from spandsp's own generator (the one its line models use)."""
    lib = library()
    state = lib.awgn_init_dbm0(None, seed, ctypes.c_float(level_dbm0))
    try:
        return [lib.awgn(state) for _ in range(samples)]
    finally:
        lib.awgn_free(state)
