"""The one media thread: a 20 ms clock that drives the fax media of every call.

T.38 and G.711 fax both need a steady 20 ms pulse (``t38_terminal_send_timeout(160)``, one
RTP frame of ``fax_tx``), for every call at once, and none of that DSP may run on the event
loop. FreeSWITCH drives all its T.38 terminals from one timer thread the same way. One thread
for all calls keeps the cost per call at a few tens of microseconds a tick; spandsp runs in C
through ctypes, which releases the GIL, so the event loop keeps answering meanwhile.

Timing is drift free: tick n is due at ``start + n * period`` (absolute deadlines, not "sleep
20 ms after the work"). A tick that starts ``late_after_s`` or more behind its deadline is
counted late. After a stall (a GC pause, a starved machine) at most ``max_catch_up`` overdue
ticks run back to back and the rest are skipped (counted): the media clock of every call then
lags wall time a little, which fax tolerates, rather than bursting a second of audio at once.

``period_s`` is 20 ms on a gateway; tests run the same code faster, since media time only moves
by ticks (160 samples each) and nothing in a call reads the wall clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from gateway.transports.callmedia import CallMedia, EndReason
from gateway.transports.media import BLOCK
from gateway.transports.spandsp import SAMPLE_RATE

PERIOD_S = BLOCK / SAMPLE_RATE  # 20 ms


@dataclass(frozen=True)
class ClockStats:
    ticks: int  # ticks run
    late_ticks: int  # ticks that started late_after_s or more after their deadline
    skipped_ticks: int  # ticks given up after a stall (beyond max_catch_up)
    worst_lateness_s: float
    cpu_s: float  # CPU time of the media thread while ticking
    call_ticks: int  # sum over ticks of the calls driven: call-seconds = call_ticks * period
    calls: int  # calls on the clock now

    def cpu_per_call_second(self, period_s: float = PERIOD_S) -> float:
        call_seconds = self.call_ticks * period_s
        return self.cpu_s / call_seconds if call_seconds else 0.0


class Schedule:
    """When ticks are due: tick n at ``start + n * period``, whatever the work took.

    ``begin(now)`` is called as a tick starts; it counts the tick late when it starts
    ``late_after`` or more behind its deadline and, when more than ``max_catch_up`` further
    ticks are already overdue, gives those up (moves the deadline forward by whole periods, so
    the grid stays aligned with the start). ``wait(now)`` is how long to sleep before the next.
    """

    def __init__(
        self, start: float, period: float, *, max_catch_up: int, late_after: float
    ) -> None:
        self.period = period
        self.deadline = start  # of the next tick
        self.max_catch_up = max_catch_up
        self.late_after = late_after
        self.late = self.skipped = 0
        self.worst = 0.0

    def wait(self, now: float) -> float:
        return max(0.0, self.deadline - now)

    def begin(self, now: float) -> None:
        lateness = now - self.deadline
        overdue = int(lateness / self.period)  # later ticks already due besides this one
        if overdue > self.max_catch_up:
            given_up = overdue - self.max_catch_up
            self.skipped += given_up
            self.deadline += given_up * self.period
            lateness -= given_up * self.period
        if lateness >= self.late_after:
            self.late += 1
        self.worst = max(self.worst, lateness)
        self.deadline += self.period


class MediaClock:
    """``start()``, then ``add(call)`` from the event loop; ``stop()`` hangs up what is left."""

    def __init__(
        self,
        *,
        period_s: float = PERIOD_S,
        max_catch_up: int = 3,
        late_after_s: float | None = None,
        name: str = "media-clock",
    ) -> None:
        if period_s <= 0 or max_catch_up < 0:
            raise ValueError("the period must be positive and max_catch_up at least 0")
        self.period_s = period_s
        self._max_catch_up = max_catch_up
        self._late_after = period_s / 2 if late_after_s is None else late_after_s
        self._name = name
        self._incoming: deque[CallMedia] = deque()  # appended on the loop, taken by the thread
        self._calls: list[CallMedia] = []  # the thread's own
        self._lock = threading.Lock()  # orders add() against stop()
        self._stopping = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._schedule: Schedule | None = None
        self._ticks = self._call_ticks = 0
        self._cpu = 0.0

    @property
    def stats(self) -> ClockStats:
        schedule = self._schedule
        return ClockStats(
            ticks=self._ticks,
            late_ticks=schedule.late if schedule else 0,
            skipped_ticks=schedule.skipped if schedule else 0,
            worst_lateness_s=schedule.worst if schedule else 0.0,
            cpu_s=self._cpu,
            call_ticks=self._call_ticks,
            calls=len(self._calls) + len(self._incoming),
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                raise RuntimeError("a media clock starts once")
            # A daemon thread so that a forgotten stop() cannot keep the process alive.
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def add(self, call: CallMedia) -> None:
        """Drive ``call`` from the next tick on (thread safe)."""
        with self._lock:
            if self._closed or self._thread is None:
                raise RuntimeError("the media clock is not running")
            call._attach()
            self._incoming.append(call)

    def stop(self, timeout: float = 5.0) -> None:
        """Hang up every call (their ``done`` get their outcomes) and end the thread."""
        with self._lock:
            self._closed = True
            self._stopping.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> MediaClock:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        schedule = self._schedule = Schedule(
            time.monotonic(),
            self.period_s,
            max_catch_up=self._max_catch_up,
            late_after=self._late_after,
        )
        try:
            while not self._stopping.wait(schedule.wait(time.monotonic())):
                schedule.begin(time.monotonic())
                self._tick()
        finally:
            self._hang_up_all()

    def _tick(self) -> None:
        started = time.thread_time()
        while self._incoming:
            self._calls.append(self._incoming.popleft())
        alive = []
        for call in self._calls:
            try:
                finished = call._step()
            except Exception as exc:  # one call's failure must not stop the others' media
                call._fail(exc)
                finished = True
            if not finished:
                alive.append(call)
        self._call_ticks += len(self._calls)
        self._calls = alive
        self._ticks += 1
        self._cpu += time.thread_time() - started

    def _hang_up_all(self) -> None:
        # stop() set _closed under the lock before setting the event, so nothing can be added
        # after this drain.
        while self._incoming:
            self._calls.append(self._incoming.popleft())
        for call in self._calls:
            call._end(EndReason.HANGUP)  # settles done with an outcome or the exception
        self._calls = []
