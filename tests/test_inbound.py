"""The inbound line: an arriving call lands in the faxbox that has the dialled number."""

from __future__ import annotations

import pytest

from gateway.inbound import FaxboxInbound, dialled_number
from gateway.models import Direction, FaxStatus
from gateway.store import Store
from gateway.transports.base import ArrivingCall, ReceivedFax
from tests.builders import tiff_bytes
from tests.conftest import make_tenant

NUMBER = "+14155550101"


async def fake_pdf(tiff: bytes) -> bytes:
    return b"%PDF-1.4 stand-in"


@pytest.mark.parametrize(
    ("dialled", "region", "number"),
    [
        ("+14155550101", "US", NUMBER),
        ("14155550101", "US", NUMBER),  # E.164 digits without the plus
        ("4155550101", "US", NUMBER),  # national form
        ("004930123456", "DE", "+4930123456"),  # international prefix of the trunk's region
        ("030123456", "DE", "+4930123456"),
        ("+4930123456", "US", "+4930123456"),
        ("442079460000", "US", "+442079460000"),  # digits that are E.164 only with a plus
        ("fax", "US", None),
        ("", "US", None),
        ("123", "US", None),
    ],
)
def test_dialled_numbers_are_normalized(dialled: str, region: str, number: str | None) -> None:
    assert dialled_number(dialled, region) == number


@pytest.mark.parametrize("dialled", ["+14155550101", "14155550101", "4155550101"])
async def test_a_call_lands_in_the_faxbox_with_the_dialled_number(
    store: Store, dialled: str
) -> None:
    tenant = await make_tenant(store, fax_number=NUMBER, fax_identity="ACME FAX")
    finished: list[str] = []
    line = FaxboxInbound(store, fake_pdf, "node-a", 60, on_finished=finished.append)
    reception = await line.arriving(ArrivingCall(dialled, "+15557770000", "Sender"))
    assert reception is not None
    assert reception.faxbox_id == tenant.faxbox.id and reception.csi == "ACME FAX"
    incoming = await store.get_fax(reception.fax_id)
    assert (incoming.direction, incoming.status) == (Direction.INBOUND, FaxStatus.PROCESSING)
    assert incoming.from_number == "+15557770000"

    image = tiff_bytes(2)
    await line.received(
        reception, ReceivedFax(image, 2, "+15557770000", True, "OK", 14400, True, 0)
    )
    fax = await store.get_fax(reception.fax_id)
    assert (fax.status, fax.pages) == (FaxStatus.COMPLETED, 2)
    assert fax.rx_result is not None
    assert fax.rx_result["pages_received"] == 2 and fax.rx_result["fax_speed"] == 14400
    assert (await store.fax_documents(fax.id, "tiff"))[0].data == image
    assert finished == [fax.id]
    await line.close()


async def test_a_number_no_faxbox_has_is_refused(store: Store) -> None:
    await make_tenant(store, fax_number=NUMBER)
    line = FaxboxInbound(store, fake_pdf, "node-a", 60)
    assert await line.arriving(ArrivingCall("+14155550199", None, None)) is None
    assert await line.arriving(ArrivingCall("not-a-number", None, None)) is None
    assert await store.recent_faxes(None, 10) == []


async def test_a_call_that_delivered_nothing_is_a_failed_inbound_fax(store: Store) -> None:
    await make_tenant(store, fax_number=NUMBER)
    line = FaxboxInbound(store, fake_pdf, "node-a", 60)
    reception = await line.arriving(ArrivingCall(NUMBER, None, None))
    assert reception is not None
    nothing = ReceivedFax(b"", 0, None, False, "No response after sending a page", 0, False, 0)
    await line.received(reception, nothing)
    fax = await store.get_fax(reception.fax_id)
    assert fax.status is FaxStatus.FAILED
    assert fax.rx_result is not None
    assert fax.rx_result["result_text"] == "No response after sending a page"
    assert await store.fax_documents(fax.id, "tiff") == []


async def test_a_stop_ends_receptions_its_owner_was_running(store: Store) -> None:
    await make_tenant(store, fax_number=NUMBER)
    line = FaxboxInbound(store, fake_pdf, "node-a", 60)
    reception = await line.arriving(ArrivingCall(NUMBER, None, None))
    assert reception is not None
    await line.close()
    await store.release_leases("node-a")  # what the worker's drain does at a stop
    assert (await store.get_fax(reception.fax_id)).status is FaxStatus.FAILED
