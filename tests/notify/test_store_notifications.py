"""The notifications table: written with the outcome, in its transaction, once per event."""

from __future__ import annotations

from gateway.models import Direction, NewFax, NotificationEvent, NotificationState
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from gateway.store.notifications import MAX_RECIPIENTS_PER_CHANNEL, recipients_of
from tests.conftest import Clock, Tenant, make_tenant
from tests.notify.support import finished_fax


async def test_received_fax_queues_email_to_the_faxbox_inbound_recipients(
    store: Store, tenant: Tenant
) -> None:
    box = (await make_tenant(store, "in", "in.test", inbound_notify=("inbox@in.test",))).faxbox
    ok = await store.begin_inbound(box, "+12125550100", "TSI")
    assert await store.notifications_of_fax(ok) == []  # still arriving: nothing yet
    assert await store.finish_inbound(ok, {"success": True}, b"tiff", b"%PDF", 1)
    rows = await store.notifications_of_fax(ok)
    assert [(r.event, r.channel, r.recipient, r.state) for r in rows] == [
        (NotificationEvent.INBOUND_RECEIVED, "email", to, NotificationState.PENDING)
        for to in ("owner@acme.test", "inbox@in.test")  # the owner, then the faxbox's list
    ]
    failed = await store.begin_inbound(box, None, None)
    assert await store.finish_inbound(failed, {"success": False}, None, None, 0)
    assert [n.event for n in await store.notifications_of_fax(failed)] == [
        NotificationEvent.INBOUND_FAILED
    ] * 2


async def test_a_crash_with_no_attempts_left_notifies_the_failure(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            to_number="+12125550188",
            retries=1,
            notifications={"email": {"send_to": ["alice@example.com"]}},
        )
    )
    [_] = await store.claim_attaching("r", 60, 1)
    assert await store.finish_render(fax_id, "r", b"tiff", b"%PDF", 1)
    [_] = await store.claim_due("crashed", 30, 10, 1)
    clock.advance(31)
    assert await store.recover_expired() == 1
    [row] = await store.notifications_of_fax(fax_id)
    assert row.event is NotificationEvent.OUTBOUND_FAILED


# The next two look inside SqliteStore: its enqueue step runs in the caller's transaction.


async def test_enqueue_is_once_per_event_and_only_in_that_state(
    sqlite_store: SqliteStore, database: Database
) -> None:
    store = sqlite_store
    fax_id = await finished_fax(store, await make_tenant(store), email_to=["a@example.com"])
    async with database.transaction() as db:
        # A second call (a caller without a state guard) and a wrong event add nothing.
        assert await store._enqueue_notifications(db, fax_id, "outbound_completed") == 0
        assert await store._enqueue_notifications(db, fax_id, "outbound_failed") == 0
        assert await store._enqueue_notifications(db, "no-such-fax", "outbound_failed") == 0
    assert len(await store.notifications_of_fax(fax_id)) == 1


async def test_a_rolled_back_outcome_leaves_no_notification(
    sqlite_store: SqliteStore, database: Database
) -> None:
    store = sqlite_store
    tenant = await make_tenant(store)
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            to_number="+12125550188",
            notifications={"email": {"send_to": ["a@example.com"]}},
        )
    )
    try:
        async with database.transaction() as db:
            await db.execute("UPDATE faxes SET status = 'failed' WHERE id = ?", (fax_id,))
            assert await store._enqueue_notifications(db, fax_id, "outbound_failed") == 1
            raise RuntimeError("the outcome's transaction fails after the insert")
    except RuntimeError:
        pass
    assert await store.notifications_of_fax(fax_id) == []


def test_recipients_follow_kazoos_order_and_are_bounded() -> None:
    prefs = {
        "email": {"send_to": ["all@example.com"]},
        "outbound": {"email": {"send_to": "out@example.com"}},
        "sms": {"send_to": ["+1555", 42, "", "+1555", {"x": 1}]},
    }
    assert recipients_of(prefs, Direction.OUTBOUND, "email") == ["out@example.com"]
    assert recipients_of(prefs, Direction.INBOUND, "email") == ["all@example.com"]
    assert recipients_of(prefs, Direction.OUTBOUND, "sms") == ["+1555"]
    assert recipients_of({"email": "x"}, Direction.OUTBOUND, "email") == []
    many = {"email": {"send_to": [f"u{n}@example.com" for n in range(100)]}}
    assert len(recipients_of(many, Direction.OUTBOUND, "email")) == MAX_RECIPIENTS_PER_CHANNEL
