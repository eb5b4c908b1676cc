"""The fax media of one SIP call and the SDP that steers it, the same in both directions.

A ``FaxSession`` owns the call's media port from before the first SDP (the port is in it) until
its ``CallMedia`` takes it over, and answers every offer/answer move of the call:

- the first exchange: our G.711 offer and the far end's answer (outbound), or our answer to the
  far end's offer (inbound: T.38 when it offers T.38, alone or beside audio, and we take T.38;
  else one G.711 law);
- the far end's re-INVITE (``on_reinvite``, installed on the SIP call): a T.38 offer is answered
  the way FreeSWITCH answers (``sdp.answer_t38``) and switches the media, unless t38 = "off"
  (488); an audio offer in audio only moves the far end's address; anything else is 488;
- our own T.38 re-INVITE (``request_t38``), at most once a call: after about 2 s of audio when
  sending (t38 = "request"), after CNG or the V.21 preamble when receiving (the receiver is the
  side that normally switches). A 488, any other refusal, or no answer at all leaves the call in
  audio: the fax carries on.

Media time and wall time: the media clock of a test may run faster than 20 ms a tick; delays
measured in media seconds (the 2 s of audio, the grace for a hang-up) are scaled by
``MediaContext.wall`` so that they mean the same amount of media whatever the clock's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from gateway.config import SipSettings
from gateway.errors import SipError
from gateway.sip import sdp
from gateway.sip.calls import Call
from gateway.transports.callmedia import AudioMode, CallMedia, T38Mode
from gateway.transports.media import FaxOutcome
from gateway.transports.mediaclock import PERIOD_S, MediaClock
from gateway.transports.rtp import MediaPort, PortAllocator
from gateway.transports.spandsp import (
    RATE_LOCAL_TCF,
    RATE_TRANSFERRED_TCF,
    G711Law,
    T30Config,
    T38Settings,
    Tone,
)

log = logging.getLogger(__name__)

T38_REQUEST_AFTER_S = 2.0  # media seconds of audio before a sender asks for T.38 (FreeSWITCH)
# When the far end hangs up, its last packets (its DCN, our MCF) may still be behind its BYE:
# T.30 gets this long (media seconds) to finish by itself before we cut it. The same grace is
# given to a sender to hang up first once our receiving side is done.
HANGUP_GRACE_S = 2.0
TONES_FOR_T38 = (Tone.FAX_CNG, Tone.FAX_PREAMBLE)

Address = tuple[str, int]
Mode = AudioMode | T38Mode


@dataclass(frozen=True)
class MediaContext:
    """What every call's media shares: settings, the one clock, the ports, our SDP address."""

    settings: SipSettings
    clock: MediaClock
    ports: PortAllocator
    address: str  # the c= address of our SDP (public_address, else the SIP one)

    def wall(self, media_seconds: float) -> float:
        """Wall seconds that ``media_seconds`` of media take on this clock."""
        return media_seconds * self.clock.period_s / PERIOD_S


@dataclass(frozen=True)
class T38Attempt:
    """One T.38 re-INVITE of the call, for the call's record and the logs."""

    ours: bool  # we sent it (else the far end did and we answered)
    status: int | None  # its final status; None when it never got one (timeout, error)
    switched: bool  # the media went to T.38
    note: str = ""


@dataclass
class CallRecord:
    """How one call went, kept by the transport (``SipTransport.recent``) for diagnosis."""

    direction: Literal["outbound", "inbound"]
    number: str  # dialled: the Request-URI user we sent, or the one the far end sent
    call_id: str | None = None
    sip_code: int | None = None  # the final status of the INVITE (ours or our answer)
    media: str | None = None  # "g711" or "t38" at the end
    t38: list[T38Attempt] = field(default_factory=list)
    sip_end: str | None = None  # Call.end_reason: "local bye", "remote bye", ...
    media_end: str | None = None  # EndReason of the media
    result: str = ""


class FaxSession:
    """See the module docstring. Make it on the event loop, with a port just opened."""

    def __init__(
        self, ctx: MediaContext, port: MediaPort, *, calling: bool, record: CallRecord
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.port = port
        self.calling = calling
        self.record = record
        self.media: CallMedia | None = None
        self.call: Call | None = None
        family = "IP6" if ":" in ctx.address else "IP4"
        # RFC 4566: the session id is ours to choose, the version grows with each new SDP.
        self._origin = sdp.Origin("fax-gateway", secrets.randbits(62), 1, ctx.address, family)
        self._sdp_sent = False
        self._audio: sdp.AudioChoice | None = None
        self._requested = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- SDP of ours -----------------------------------------------------------------------

    def _origin_for_new_sdp(self) -> sdp.Origin:
        if self._sdp_sent:
            self._origin = self._origin.next_version()
        self._sdp_sent = True
        return self._origin

    def _audio_caps(self, codecs: tuple[str, ...] | None = None) -> sdp.AudioCaps:
        return sdp.AudioCaps(codecs=codecs or self.settings.codecs)

    def _t38_caps(self) -> sdp.T38Caps:
        return sdp.T38Caps(redundancy=self.settings.t38_redundancy > 0)

    def audio_offer(self) -> bytes:
        offer = sdp.offer_audio(
            self._origin_for_new_sdp(), self.ctx.address, self.port.port, self._audio_caps()
        )
        return sdp.build(offer).encode()

    def _audio_mode(self, choice: sdp.AudioChoice) -> AudioMode:
        self._audio = choice
        law = G711Law.ULAW if choice.encoding == "PCMU" else G711Law.ALAW
        return AudioMode(law, choice.payload_type)

    def _t38_mode(self, choice: sdp.T38Choice) -> T38Mode:
        local_tcf = choice.rate_management is sdp.RateManagement.LOCAL_TCF
        settings = T38Settings(
            version=choice.version,
            max_bit_rate=choice.max_bit_rate,
            rate_management=RATE_LOCAL_TCF if local_tcf else RATE_TRANSFERRED_TCF,
            max_buffer=choice.far_max_buffer,
            max_datagram=choice.far_max_datagram,
            fill_bit_removal=choice.fill_bit_removal,
        )
        redundancy = self.settings.t38_redundancy if choice.redundancy else 0
        return T38Mode(settings, choice.far_max_datagram, redundancy)

    # -- the first offer/answer ------------------------------------------------------------

    def take_answer(self, body: bytes) -> tuple[Mode, Address]:
        """The far end's answer to our audio offer: how to start the media, and where to."""
        answer = sdp.parse(body)
        audio = sdp.find_audio(answer)
        if audio is not None:
            return self._audio_mode(sdp.accept_audio_answer(audio)), sdp.media_endpoint(
                answer, audio
            )
        t38 = sdp.find_t38(answer)
        if t38 is not None and self.settings.t38 != "off":
            # Not an answer to what we offered, but what a T.38-only leg behind a media relay
            # (rtpengine's T.38=force) gives: take it as if we had offered T.38.
            ours = sdp.offer_t38(self._origin, self.ctx.address, self.port.port, self._t38_caps())
            offered = sdp.find_t38(ours)
            assert offered is not None
            choice = sdp.accept_t38_answer(offered.params, t38.params)
            self._note_t38(T38Attempt(False, 200, True, "T.38 in the answer to our audio offer"))
            return self._t38_mode(choice), sdp.media_endpoint(answer, t38)
        raise sdp.SdpNegotiationError("the answer accepts no G.711 audio")

    def answer_offer(self, body: bytes) -> tuple[bytes, Mode, Address]:
        """Our answer to the far end's first offer: T.38 when offered and allowed, else audio."""
        offer = sdp.parse(body)
        t38 = sdp.find_t38(offer) if self.settings.t38 != "off" else None
        if t38 is not None:
            answer, mode, remote = self._t38_answer(offer, t38)
            self._note_t38(T38Attempt(False, 200, True, "T.38 offered in the INVITE"))
            return answer, mode, remote
        audio = sdp.find_audio(offer)
        if audio is None:
            raise sdp.SdpNegotiationError("neither G.711 audio nor T.38 we take is offered")
        media, choice = sdp.answer_audio(audio, self._audio_caps(), self.port.port)
        remote = sdp.media_endpoint(offer, audio)
        answer = self._answer(offer, {offer.media.index(audio): media})
        return answer, self._audio_mode(choice), remote

    def _t38_answer(
        self, offer: sdp.SessionDescription, t38: sdp.T38Media
    ) -> tuple[bytes, T38Mode, Address]:
        remote = sdp.media_endpoint(offer, t38)
        params, choice = sdp.answer_t38(t38.params, self._t38_caps())
        answer = self._answer(offer, {offer.media.index(t38): sdp.T38Media(self.port.port, params)})
        return answer, self._t38_mode(choice), remote

    def _answer(self, offer: sdp.SessionDescription, accepted: dict[int, sdp.Media]) -> bytes:
        origin = self._origin_for_new_sdp()
        return sdp.build(sdp.build_answer(offer, origin, self.ctx.address, accepted)).encode()

    # -- the media -------------------------------------------------------------------------

    def start(self, call: Call, mode: Mode, remote: Address, config: T30Config) -> CallMedia:
        """The call is answered: its media runs from the next tick, its re-INVITEs come here."""
        listen: tuple[Tone, ...] = ()
        if isinstance(mode, AudioMode) and not self.calling and self.settings.t38 != "off":
            listen = TONES_FOR_T38
            mode = replace(mode, listen_for=listen)
        self.call = call
        media = CallMedia(
            self.port,
            calling=self.calling,
            config=config,
            mode=mode,
            remote=remote,
            silence_timeout_s=self.settings.media_silence_s,
            on_tone=self._on_tone if listen else None,
        )
        try:
            self.ctx.clock.add(media)
        except RuntimeError:  # the clock stopped: the transport is closing
            media.hangup()  # gives the port back
            raise
        self.media = media  # the port is the media's now: it closes it when the call ends
        call.on_reinvite = self.on_reinvite
        return media

    def close(self) -> None:
        """Give the port back when no media was started (a refused or failed call)."""
        if self.media is None:
            self.port.close()
        self._cancel_tasks()

    async def finish(self) -> FaxOutcome:
        """Until the fax is over: T.30 done or media silence (we then hang up), or the far
        end's BYE (T.30 gets HANGUP_GRACE_S to finish, then it is cut). Raises what broke
        the media."""
        media, call = self.media, self.call
        assert media is not None and call is not None
        ended = asyncio.ensure_future(call.ended.wait())
        either: set[asyncio.Future[Any]] = {media.done, ended}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not media.done.done():
                await asyncio.wait({media.done}, timeout=self.ctx.wall(HANGUP_GRACE_S))
                if not media.done.done():
                    media.hangup()
        except BaseException:
            media.hangup()  # cancelled: the media must not outlive its call
            raise
        finally:
            ended.cancel()
            self._cancel_tasks()
        outcome = await media.done
        self.record.media = media.media
        self.record.media_end = media.end_reason.value if media.end_reason else None
        return outcome

    async def await_far_end_hangup(self) -> None:
        """Our receiving side is done: the sender normally hangs up now; give it the grace."""
        call = self.call
        if call is not None and not call.ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), self.ctx.wall(HANGUP_GRACE_S))

    # -- T.38 switches ---------------------------------------------------------------------

    async def on_reinvite(self, body: bytes) -> bytes | int:
        """The far end's re-INVITE with a new offer (refreshes never get here)."""
        media = self.media
        if media is None:
            return 488
        try:
            offer = sdp.parse(body)
            t38 = sdp.find_t38(offer)
            if t38 is not None and self.settings.t38 != "off":
                answer, mode, remote = self._t38_answer(offer, t38)
                media.switch_to_t38(mode, remote)
                self._note_t38(T38Attempt(False, 200, True))
                return answer
            audio = sdp.find_audio(offer)
            if audio is not None and media.media == "g711" and self._audio is not None:
                # Still audio, same law (CallMedia cannot change its law): the far end's media
                # moved (a relay, a hold and unhold).
                caps = self._audio_caps((self._audio.encoding,))
                answered, _ = sdp.answer_audio(audio, caps, self.port.port)
                remote = sdp.media_endpoint(offer, audio)
                answer = self._answer(offer, {offer.media.index(audio): answered})
                media.set_remote(*remote)
                return answer
        except sdp.SdpError as exc:
            log.info("re-INVITE of call %s refused: %s", self._call_id, exc)
            return 488
        if t38 is not None:
            self._note_t38(T38Attempt(False, 488, False, "t38 = off"))
        return 488

    def request_t38_after(self, media_seconds: float) -> None:
        """Sending side with t38 = "request": ask for T.38 after that much audio."""

        async def later() -> None:
            await asyncio.sleep(self.ctx.wall(media_seconds))
            await self.request_t38("after audio")

        self._spawn(later())

    def _on_tone(self, _seconds: float, tone: Tone) -> None:
        if not self._requested:
            self._spawn(self.request_t38(f"{tone.name} heard"))

    async def request_t38(self, why: str) -> None:
        """Our T.38 re-INVITE, once a call; whatever it gets, the call goes on."""
        media, call = self.media, self.call
        if self._requested or media is None or call is None or self.settings.t38 == "off":
            return
        if media.media == "t38" or call.ended.is_set():
            return
        self._requested = True
        caps = self._t38_caps()
        offer = sdp.offer_t38(self._origin_for_new_sdp(), self.ctx.address, self.port.port, caps)
        offered = sdp.find_t38(offer)
        assert offered is not None
        log.info("call %s: T.38 re-INVITE (%s)", self._call_id, why)
        try:
            response = await call.reinvite(sdp.build(offer).encode())
        except SipError as exc:
            self._note_t38(T38Attempt(True, None, False, str(exc) or type(exc).__name__))
            return
        if response.status >= 300:
            self._note_t38(T38Attempt(True, response.status, False, response.reason or ""))
            return
        try:
            answer = sdp.parse(response.body)
            t38 = sdp.find_t38(answer)
            if t38 is None:
                raise sdp.SdpNegotiationError("answered without T.38")
            mode = self._t38_mode(sdp.accept_t38_answer(offered.params, t38.params))
            remote = sdp.media_endpoint(answer, t38)
        except sdp.SdpError as exc:
            self._note_t38(T38Attempt(True, response.status, False, str(exc)))
            return
        media.switch_to_t38(mode, remote)
        self._note_t38(T38Attempt(True, response.status, True))

    def _note_t38(self, attempt: T38Attempt) -> None:
        self.record.t38.append(attempt)
        outcome = "switched to T.38" if attempt.switched else "stays in audio"
        who = "our" if attempt.ours else "their"
        log.info(
            "call %s: %s T.38 offer: %s, %s %s",
            self._call_id,
            who,
            attempt.status,
            outcome,
            attempt.note,
        )

    @property
    def _call_id(self) -> str:
        return self.call.call_id if self.call is not None else "(unanswered)"

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
