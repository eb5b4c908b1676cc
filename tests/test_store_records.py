"""The records that cross the store interface: one shape of ``tx_result`` whoever builds it."""

from __future__ import annotations

from gateway.store.records import TxResultRecord
from gateway.views import TX_RESULT_DEFAULTS


def test_every_tx_result_carries_every_key_clients_read() -> None:
    for record in (
        TxResultRecord.unsent("a.pdf: encrypted", "document could not be prepared", 3.4),
        TxResultRecord.interrupted("attempt interrupted", 2, 61.6),
    ):
        shown = record.as_dict()
        assert set(TX_RESULT_DEFAULTS) <= set(shown)
        assert shown["success"] is False and shown["pages_sent"] == 0
        # Figures only a call has are left out rather than shown as made-up values.
        assert not {"line_seconds", "sip_code", "media"} & set(shown)


def test_a_failure_before_the_line_is_permanent_a_crash_is_a_line_failure() -> None:
    unsent = TxResultRecord.unsent("cancelled by admin", "cancelled", 9.6).as_dict()
    assert (unsent["failure_class"], unsent["result_text"], unsent["time_elapsed"]) == (
        "permanent",
        "cancelled",
        10,
    )
    assert unsent["total_pages"] == 0 and unsent["result_code"] is None
    crashed = TxResultRecord.interrupted("attempt interrupted", 4, -5.0).as_dict()
    assert (crashed["failure_class"], crashed["result_text"]) == ("line", "interrupted")
    assert crashed["total_pages"] == 4 and crashed["time_elapsed"] == 0  # never negative


def test_a_call_s_own_figures_show_when_known() -> None:
    record = TxResultRecord(
        success=True,
        error_message=None,
        result_code=0,
        result_text="OK",
        pages_sent=2,
        total_pages=2,
        fax_speed=14400,
        fax_error_correction=True,
        fax_receiver_id="+1 212 555 0188",
        fax_bad_rows=0,
        time_elapsed=40,
        failure_class=None,
        line_seconds=38.5,
        sip_code=200,
        media="t38",
    )
    shown = record.as_dict()
    assert (shown["line_seconds"], shown["sip_code"], shown["media"]) == (38.5, 200, "t38")
