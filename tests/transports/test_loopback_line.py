"""Real T.30 sessions through libspandsp, end to end through the transport (no mocks)."""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from gateway.transports.base import (
    FailureClass,
    FaxTransport,
    OutboundCall,
    ReceivedFax,
    TxResult,
)
from gateway.transports.loopback import LoopbackTransport
from gateway.transports.remotes import RemoteDirectory
from gateway.transports.session import CallRequest, place_call
from tests.transports.inbound_recorder import RecordingInbound

MakeCall = Callable[..., OutboundCall]
LOCAL = "+15559990000"
REMOTES = {
    "+15550000001": "busy",
    "+15550000002": "no_answer",
    "+15550000003": "hangup_after:1",
    "+15550000004": "noisy",
    "+15550000005": "noisy:20",
    "+15550000006": "refuse",
    "+1666*": "busy",
}


@pytest.fixture
def inbound() -> RecordingInbound:
    return RecordingInbound(lambda number: number == LOCAL)


@pytest.fixture
async def transport(inbound: RecordingInbound) -> AsyncIterator[LoopbackTransport]:
    line = LoopbackTransport(REMOTES, inbound)
    yield line
    await line.close()


def assert_clean_success(result: TxResult, pages: int, csi: str) -> None:
    assert result.success, result
    assert result.failure_class is None
    assert result.result_code == 0
    assert result.result_text == "OK"
    assert result.error_message is None
    assert result.pages_sent == pages
    assert 2400 <= result.fax_speed <= 14400
    assert result.fax_error_correction is True
    assert result.fax_receiver_id == csi
    assert result.fax_bad_rows == 0
    assert 5 < result.line_seconds < 60 * pages


def test_transport_satisfies_protocol(transport: LoopbackTransport) -> None:
    checked: FaxTransport = transport
    assert checked is transport


async def test_one_page(
    transport: LoopbackTransport, inbound: RecordingInbound, make_call: MakeCall
) -> None:
    result = await transport.send(make_call("+15551230000", pages=1))
    assert_clean_success(result, 1, "+15551230000")
    assert result.fax_speed == 14400  # clean line: V.17 at full speed
    assert inbound.faxes == []  # not a local number: offered to the inbound line, not admitted
    assert [call.dialled for call in inbound.arrived] == ["+15551230000"]


async def test_multi_page_to_local_faxbox(
    transport: LoopbackTransport, inbound: RecordingInbound, make_call: MakeCall
) -> None:
    call = make_call(LOCAL, pages=3)
    result = await transport.send(call)
    assert_clean_success(result, 3, LOCAL)

    assert inbound.arrived[0].caller_number == call.from_number
    received = inbound.last
    assert received is not None
    assert received.success
    assert received.pages == 3
    assert received.remote_tsi == call.tsi
    assert received.fax_speed == result.fax_speed
    assert received.fax_error_correction
    with Image.open(io.BytesIO(received.tiff)) as image:
        assert getattr(image, "n_frames", 1) == 3
        assert image.size[0] == 1728
        # spandsp stamps the header line above the page: the source's top rows are white,
        # the received first rows carry the header text.
        header = image.convert("L").crop((0, 0, 1728, 32))
        assert header.getextrema()[0] == 0, "no header line stamped"


def first_rows_extrema(received: ReceivedFax) -> tuple[int, int]:
    with Image.open(io.BytesIO(received.tiff)) as image:
        return image.convert("L").crop((0, 0, 1728, 32)).getextrema()  # type: ignore[return-value]


async def test_header_line_follows_identity(make_call: MakeCall) -> None:
    inbound = RecordingInbound()
    line = LoopbackTransport(inbound=inbound)
    try:
        await line.send(make_call(LOCAL, tsi="+4930123456", header=None))
        await line.send(make_call(LOCAL, tsi=None, header=None, from_number=None))
    finally:
        await line.close()
    (_, tsi_only), (_, anonymous) = inbound.faxes
    assert tsi_only.remote_tsi == "+4930123456"
    assert first_rows_extrema(tsi_only)[0] == 0  # header line with date, TSI and page
    assert anonymous.remote_tsi is None
    assert first_rows_extrema(anonymous) == (255, 255)  # nothing stamped: the page as sent


async def test_busy(transport: LoopbackTransport, make_call: MakeCall) -> None:
    result = await transport.send(make_call("+15550000001"))
    assert not result.success
    assert result.failure_class is FailureClass.BUSY
    assert result.result_code < 0
    assert result.pages_sent == 0 and result.fax_speed == 0
    assert 1 <= result.line_seconds <= 10


async def test_no_answer(transport: LoopbackTransport, make_call: MakeCall) -> None:
    started = time.monotonic()
    result = await transport.send(make_call("+15550000002"))
    assert result.failure_class is FailureClass.NO_ANSWER
    assert result.line_seconds == pytest.approx(45.0)
    assert time.monotonic() - started < 1.0  # simulated seconds, not wall clock


async def test_remote_hangs_up_after_first_of_three_pages(
    transport: LoopbackTransport, make_call: MakeCall
) -> None:
    result = await transport.send(make_call("+15550000003", pages=3))
    assert not result.success
    assert result.failure_class is FailureClass.LINE
    assert result.pages_sent == 1
    assert result.fax_speed == 14400
    assert result.error_message == "The call dropped prematurely"


@pytest.mark.parametrize(("after", "sent"), [(2, 2), (3, 3)])
async def test_hangup_after_n_pages_to_local_faxbox(
    make_call: MakeCall, after: int, sent: int
) -> None:
    inbound = RecordingInbound()
    line = LoopbackTransport({LOCAL: f"hangup_after:{after}"}, inbound)
    try:
        result = await line.send(make_call(LOCAL, pages=3))
    finally:
        await line.close()
    complete = sent == 3  # hanging up after the last page is a normal end of call
    assert result.success is complete
    assert result.pages_sent == sent
    received = inbound.last
    assert received is not None
    assert received.pages == sent
    assert received.success is complete
    with Image.open(io.BytesIO(received.tiff)) as image:
        assert getattr(image, "n_frames", 1) == sent


async def test_noisy_line_fails_with_line_class(
    transport: LoopbackTransport, make_call: MakeCall
) -> None:
    result = await transport.send(make_call("+15550000004"))
    assert not result.success
    assert result.failure_class is FailureClass.LINE
    assert result.pages_sent == 0
    assert result.error_message


async def test_moderately_noisy_line_falls_back_to_a_lower_speed(
    transport: LoopbackTransport, make_call: MakeCall
) -> None:
    # Without identity there is no header line, hence no clock in the image: deterministic.
    call = make_call("+15550000005", tsi=None, header=None, from_number=None)
    result = await transport.send(call)
    assert result.success, result
    assert 2400 <= result.fax_speed < 14400
    assert result.pages_sent == 1


async def test_refused_document_is_permanent(
    transport: LoopbackTransport, make_call: MakeCall
) -> None:
    result = await transport.send(make_call("+15550000006"))
    assert result.failure_class is FailureClass.PERMANENT
    assert result.pages_sent == 0
    assert result.error_message == "Far end is not able to receive"


async def test_unallocated_number_is_permanent_without_a_call(make_call: MakeCall) -> None:
    line = LoopbackTransport({"+15550000007": "invalid_number"})
    try:
        result = await line.send(make_call("+15550000007"))
    finally:
        await line.close()
    assert result.failure_class is FailureClass.PERMANENT
    assert result.result_code == -1
    assert result.error_message == "Unallocated (unassigned) number"
    assert result.pages_sent == 0


@pytest.mark.parametrize("behaviour", ["answer", "busy"])
async def test_pace_makes_a_call_take_wall_clock_time(make_call: MakeCall, behaviour: str) -> None:
    line = LoopbackTransport({"*": behaviour}, pace=0.02)
    try:
        started = time.monotonic()
        result = await line.send(make_call("+15551230000"))
        took = time.monotonic() - started
    finally:
        await line.close()
    # 20 ms of wall clock per simulated second: ~0.4 s for a one-page call, 0.12 s for busy.
    assert result.line_seconds * 0.02 * 0.9 <= took <= result.line_seconds * 0.02 + 0.5


async def test_glob_remote(transport: LoopbackTransport, make_call: MakeCall) -> None:
    result = await transport.send(make_call("+16665551234"))
    assert result.failure_class is FailureClass.BUSY


async def test_not_a_tiff_is_permanent_without_a_call(
    transport: LoopbackTransport, make_call: MakeCall
) -> None:
    result = await transport.send(make_call(tiff=b"%PDF-1.7 not a fax"))
    assert result.failure_class is FailureClass.PERMANENT
    assert result.line_seconds == 0


async def test_concurrent_calls_do_not_interfere(
    transport: LoopbackTransport, make_call: MakeCall
) -> None:
    numbers = [f"+1555123000{n}" for n in range(4)]
    results = await asyncio.gather(*(transport.send(make_call(n, pages=2)) for n in numbers))
    for number, result in zip(numbers, results, strict=True):
        assert_clean_success(result, 2, number)


async def test_process_pool_executor(make_call: MakeCall) -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        inbound = RecordingInbound()
        line = LoopbackTransport(executor=pool, inbound=inbound)
        result = await line.send(make_call(LOCAL, pages=2))
        await line.close()  # does not shut down a pool it does not own
        assert pool.submit(int, "7").result() == 7
    assert_clean_success(result, 2, LOCAL)
    assert inbound.last is not None and inbound.last.pages == 2


def test_one_page_costs_well_under_a_second_of_cpu(make_call: MakeCall) -> None:
    request = CallRequest(make_call("+15551230000"), RemoteDirectory({}).lookup("x"), True)
    place_call(request)  # warm up: library load, TIFF codecs
    started = time.process_time()
    result = place_call(request).result
    cpu = time.process_time() - started
    assert result.success
    assert cpu < 0.25, f"{cpu:.3f} s CPU for one page"


def test_temporary_files_are_removed(
    make_call: MakeCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for behaviour in ("answer", "hangup_after:1", "refuse"):
        remote = RemoteDirectory({"*": behaviour}).lookup("+15551230000")
        place_call(CallRequest(make_call("+15551230000", pages=2), remote, True))
    assert list(tmp_path.iterdir()) == []
