"""A smarthost that is down loses nothing: notifications wait, retry with backoff, and go out
once it is back, each exactly once; past the maximum age they die with the error."""

from __future__ import annotations

import asyncio

from gateway.models import NotificationState
from gateway.store import Store
from tests.conftest import Clock, Tenant
from tests.notify.conftest import MakeNotifier
from tests.notify.support import Collector, finished_fax


async def test_smarthost_down_for_a_while_then_delivered_once(
    store: Store, tenant: Tenant, clock: Clock, closed_port: int, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant, email_to=["alice@example.com", "ops@acme.test"])
    notifier = make_notifier(closed_port, retry_initial_s=60, retry_max_s=100)

    await notifier.run_until_idle()  # connection refused
    rows = await store.notifications_of_fax(fax_id)
    assert [(n.state, n.attempts) for n in rows] == [(NotificationState.PENDING, 1)] * 2
    assert rows[0].next_attempt_at == clock.now + 60
    assert rows[0].error is not None and f"127.0.0.1:{closed_port}" in rows[0].error

    clock.advance(60)
    await notifier.run_until_idle()  # still down: the wait doubles, up to retry_max_s
    rows = await store.notifications_of_fax(fax_id)
    assert [(n.attempts, n.next_attempt_at) for n in rows] == [(2, clock.now + 100)] * 2

    sink = Collector(port=closed_port)
    await sink.start()  # the smarthost comes back
    try:
        await notifier.run_until_idle()
        assert sink.received == []  # not due yet: the backoff holds
        clock.advance(100)
        await notifier.run_until_idle()
        assert sorted(r.rcpt_tos[0] for r in sink.received) == [
            "alice@example.com",
            "ops@acme.test",
        ]
        rows = await store.notifications_of_fax(fax_id)
        assert [(n.state, n.attempts, n.error) for n in rows] == [
            (NotificationState.SENT, 3, None)
        ] * 2
        clock.advance(10_000)
        await notifier.run_until_idle()
        assert len(sink.received) == 2  # nothing duplicated
    finally:
        await sink.stop()


async def test_two_senders_never_send_one_notification_twice(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    recipients = [f"user{n}@example.com" for n in range(12)]
    await finished_fax(store, tenant, email_to=recipients[:6])
    await finished_fax(store, tenant, email_to=recipients[6:])
    first = make_notifier(collector.port)
    second = make_notifier(collector.port)
    first.batch = second.batch = 3
    await asyncio.gather(first.run_until_idle(), second.run_until_idle())
    assert sorted(r.rcpt_tos[0] for r in collector.received) == sorted(recipients)


async def test_dead_with_the_error_after_the_maximum_age(
    store: Store, tenant: Tenant, clock: Clock, closed_port: int, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant)
    notifier = make_notifier(closed_port, retry_initial_s=60, max_age_s=150)
    await notifier.run_until_idle()
    clock.advance(60)
    await notifier.run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    # The last attempt is at the maximum age, not past it.
    assert (row.state, row.attempts, row.next_attempt_at) == (
        NotificationState.PENDING,
        2,
        row.created + 150,
    )
    clock.advance(90)
    await notifier.run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert (row.state, row.attempts, row.next_attempt_at) == (NotificationState.DEAD, 3, None)
    assert row.error is not None and "smarthost 127.0.0.1" in row.error
    clock.advance(10_000)
    await notifier.run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert row.attempts == 3


async def test_a_5xx_that_blames_the_setup_is_retried(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    collector.refuse_reply = "550 5.7.1 relaying denied"  # the smarthost does not know us yet
    collector.refuse.add("alice@example.com")
    fax_id = await finished_fax(store, tenant)
    await make_notifier(collector.port).run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert row.state is NotificationState.PENDING
    assert row.error == "smarthost refused the recipient: 550 5.7.1 relaying denied"


async def test_recipient_refused_with_5xx_is_dead_at_once_others_still_go(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    collector.refuse.add("gone@example.com")
    fax_id = await finished_fax(store, tenant, email_to=["gone@example.com", "alice@example.com"])
    await make_notifier(collector.port).run_until_idle()
    gone, alice = await store.notifications_of_fax(fax_id)
    assert gone.state is NotificationState.DEAD and gone.attempts == 1
    assert gone.error is not None and "550 5.1.1" in gone.error
    assert alice.state is NotificationState.SENT


async def test_unusable_addresses_and_unconfigured_channels_are_dead_with_a_reason(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    bad = await finished_fax(store, tenant, email_to=["not an address"], sms_to=["+15551230000"])
    await make_notifier(collector.port).run_until_idle()
    email, sms = await store.notifications_of_fax(bad)
    assert (email.state, email.error) == (
        NotificationState.DEAD,
        "not an email address: 'not an address'",
    )
    assert (sms.state, sms.error) == (
        NotificationState.DEAD,
        "SMS is off: notifications.sms.url is not set",
    )

    off = await finished_fax(store, tenant)
    await make_notifier(None).run_until_idle()  # no smarthost configured at all
    [row] = await store.notifications_of_fax(off)
    assert row.state is NotificationState.DEAD and row.error is not None
    assert "smarthost_host is not set" in row.error
    assert collector.received == []


async def test_a_sender_that_died_mid_delivery_is_taken_over_after_its_lease(
    store: Store, tenant: Tenant, clock: Clock, collector: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant)
    [claimed] = await store.claim_notifications("crashed-sender", 30, 10)
    notifier = make_notifier(collector.port)
    await notifier.run_until_idle()
    assert collector.received == []  # leased by the other sender
    clock.advance(31)
    await notifier.run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert (row.state, row.attempts) == (NotificationState.SENT, 2)
    assert not await store.notification_sent(claimed.id, "crashed-sender")  # lost its lease
    assert len(collector.received) == 1


async def test_run_delivers_when_woken_and_stops(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(collector.port)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    await asyncio.sleep(0.05)
    await finished_fax(store, tenant)
    notifier.wake.set()  # what the worker's on_finished does
    for _ in range(200):
        if collector.received:
            break
        await asyncio.sleep(0.01)
    assert len(collector.received) == 1
    stop.set()
    await asyncio.wait_for(task, 5)
