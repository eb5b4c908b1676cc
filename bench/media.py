"""Micro-benchmark: CPU cost of the fax media engines per call-second (T.38 and G.711).

    .venv/bin/python bench/media.py [--seconds 600] [--pages 3] [--loss 0.0]

Two endpoints of gateway.transports.media run a real fax back to back on a simulated 20 ms
clock (tests/transports/backtoback.py), over and over until ``--seconds`` of media time have
passed; ``time.process_time`` measures the CPU it took. A pair is two calls' worth of media (on
a gateway, the far end is somebody else's machine), so the figure that matters is CPU seconds
per endpoint-second: its inverse is how many calls one core could carry, before the SIP, RTP
and UDPTL work around them. ``--udptl`` also runs the T.38 IFPs through UDPTL packets (encode
with redundancy 3, decode, recovery) as the SIP layer will.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.transports.spandsp import Tone
from tests.transports.backtoback import (
    TICKS_PER_SECOND,
    IfpLink,
    UdptlLink,
    audio_pair,
    direct_link,
    run_audio,
    run_t38,
    t38_pair,
)
from tests.transports.conftest import g4_tiff


def measure(one_call: Callable[[int], tuple[int, bool]], seconds: float) -> dict[str, float]:
    ticks = calls = ok = 0
    start = time.process_time()
    while ticks < seconds * TICKS_PER_SECOND:
        n, success = one_call(calls)
        ticks += n
        calls += 1
        ok += success
    cpu = time.process_time() - start
    media_seconds = ticks / TICKS_PER_SECOND
    per_endpoint = cpu / (2 * media_seconds)
    return {
        "calls": calls,
        "succeeded": ok,
        "media_s": media_seconds,
        "cpu_s": cpu,
        "cpu_per_pair_second": cpu / media_seconds,
        "cpu_per_call_second": per_endpoint,
        "calls_per_core": 1 / per_endpoint,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="media time per engine")
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--loss", type=float, default=0.0, help="share of packets lost")
    parser.add_argument("--udptl", action="store_true", help="T.38 through UDPTL packets")
    args = parser.parse_args()
    tiff = g4_tiff(args.pages)

    def t38_call(n: int) -> tuple[int, bool]:
        with t38_pair(tiff, args.pages) as (_files, a, b):
            if args.udptl:
                ab: IfpLink = UdptlLink(redundancy=3, loss=args.loss, seed=2 * n)
                ba: IfpLink = UdptlLink(redundancy=3, loss=args.loss, seed=2 * n + 1)
            else:
                ab, ba = direct_link(), direct_link()
            ticks = run_t38(a, b, ab, ba)
            return ticks, a.outcome().success and b.outcome().success

    def g711_call(n: int, listen: tuple[list[Tone], list[Tone]] = ([], [])) -> tuple[int, bool]:
        with audio_pair(tiff, args.pages, listen=listen) as (_files, a, b):
            ticks, _lost = run_audio(a, b, loss=args.loss, seed=n)
            return ticks, a.outcome().success and b.outcome().success

    def g711_listening(n: int) -> tuple[int, bool]:
        # What a call deciding on a switch to T.38 runs: CED/preamble or CNG detection on top.
        return g711_call(n, ([Tone.FAX_CED_OR_PREAMBLE], [Tone.FAX_CNG]))

    print(f"{args.pages}-page fax, back to back, {args.seconds:.0f} s of media per engine")
    engines = [
        ("T.38 + UDPTL" if args.udptl else "T.38", t38_call),
        ("G.711", g711_call),
        ("G.711 + tones", g711_listening),
    ]
    for name, call in engines:
        r = measure(call, args.seconds)
        print(
            f"{name:14} {r['calls']:4.0f} calls ({r['succeeded']:.0f} ok), "
            f"{r['media_s']:7.0f} s media, {r['cpu_s']:6.2f} s CPU: "
            f"{r['cpu_per_call_second'] * 1000:6.3f} ms CPU per call-second "
            f"(pair {r['cpu_per_pair_second'] * 1000:6.3f} ms), "
            f"~{r['calls_per_core']:,.0f} calls per core"
        )


if __name__ == "__main__":
    main()
