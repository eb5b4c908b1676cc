"""Gateway to gateway over SIP, end to end, with real daemons: a fax mailed to one
``fax-gateway serve`` (A) for a number of another's (B) is rendered, dialled over SIP, carried
over T.38 or G.711 by both gateways' own media, and lands in B's inbox; directly, through a
real proxy and registrar (kamailio, digest both ways), and through rtpengine gatewaying a
G.711 leg to a T.38 leg.

Both daemons run their media clock at the real 20 ms pace (a page takes real seconds), so the
waits are guarded by generous timeouts and nothing here asserts on wall time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_process import Served
from tests.farend.fixtures import (  # noqa: F401
    KamailioFactory,
    kamailio_factory,
    rtpengine,
)
from tests.farend.kamailio import Kamailio, KamailioConfig, RtpengineLink
from tests.farend.rtpengine import Rtpengine
from tests.transports.sip_daemons import (
    HOST,
    Gateway,
    configure,
    finished,
    logs,
    one_in_inbox,
    poll,
    sip_keys,
)

B_NUMBER = "+14155550101"  # B's faxbox
B_CSI = "+1 415 555 0101"
A_CALLER = "+14155550199"  # A's faxbox: caller id (our From user) and TSI
A_TSI = "+1 415 555 0199"
A_DOMAIN = "a.test"  # A's faxbox takes mail for <number>@a.test


def sender(gateway: Gateway) -> dict[str, Any]:
    """A's faxbox: mail from example.com senders to <number>@a.test, three attempts."""
    return gateway.create_faxbox(
        custom_smtp_email_address=A_DOMAIN,
        permit="*@example.com",
        caller_id=A_CALLER,
        fax_identity=A_TSI,
        retries="3",
    )


def receiver(gateway: Gateway) -> dict[str, Any]:
    """B's faxbox: receives calls to B_NUMBER, answers with B_CSI."""
    return gateway.create_faxbox(fax_number=B_NUMBER, fax_identity=B_CSI)


def fax_across(a: Gateway, b: Gateway, pages: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mail ``pages`` pages to A for B's number; A's finished job and B's inbox fax."""
    fax_id = a.mail(f"{B_NUMBER}@{A_DOMAIN}", pages)
    sent = poll(finished(a, fax_id), "A's job to finish", a, b)
    received = poll(one_in_inbox(b), "B's inbox fax", a, b)
    return sent, received


def assert_delivered(
    sent: dict[str, Any], received: dict[str, Any], pages: int, media: str, logs: str
) -> None:
    """A's job completed with the real figures of a fax call over ``media``, and B's inbox
    holds the same pages with its own real figures."""
    tx = sent["tx_result"]
    assert (sent["status"], sent["attempts"], sent["pages"]) == ("completed", 1, pages), logs
    assert tx["success"] is True and tx["error_message"] in ("", None), tx
    assert (tx["sip_code"], tx["media"], tx["pages_sent"]) == (200, media, pages), tx
    assert tx["fax_speed"] > 0 and tx["fax_receiver_id"] == B_CSI, tx
    assert tx["fax_error_correction"] is True, tx  # ecm = true on both sides
    assert tx["time_elapsed"] > 0, tx

    rx = received["rx_result"]
    assert (received["status"], received["folder"]) == ("completed", "inbox"), received
    assert (received["pages"], received["to_number"]) == (pages, B_NUMBER), received
    assert received["from_number"] == A_CALLER, received
    assert rx["success"] is True and rx["pages_received"] == pages, rx
    assert rx["fax_speed"] > 0 and rx["fax_error_correction"] is True, rx
    assert rx["remote_tsi"] == A_TSI, rx


# Gateway to gateway, directly


@pytest.mark.parametrize(("t38", "media"), [("accept", "t38"), ("off", "g711")])
def test_a_fax_mailed_to_a_arrives_in_bs_inbox(
    tmp_path: Path, daemons: list[Served], t38: str, media: str
) -> None:
    """A has B as its proxy, B has A as its proxy (so B admits A's INVITEs); with t38 =
    "accept" on both, B answers in audio and switches to T.38 by its own re-INVITE after A's
    CNG; with "off" on both the whole fax goes over G.711."""
    a_sip, b_sip = sip_keys(t38=t38), sip_keys(t38=t38)
    a_sip.update(proxy_host=HOST, proxy_port=b_sip["listen_port"])
    b_sip.update(proxy_host=HOST, proxy_port=a_sip["listen_port"])
    a, b = configure(tmp_path, "a", a_sip), configure(tmp_path, "b", b_sip)
    sender(a)
    receiver(b)
    b.start(daemons)
    a.start(daemons)

    sent, received = fax_across(a, b, pages=2)

    assert_delivered(sent, received, 2, media, logs(a, b))
    # B's own account of the call: the media it received over (rx_result has no such field).
    assert f"2 page(s), OK ({media})" in b.output(), logs(a, b)
    if t38 == "accept":
        assert "T.38 re-INVITE (FAX_CNG heard)" in b.output(), logs(a, b)
        assert "our T.38 offer: 200, switched to T.38" in b.output(), logs(a, b)
        assert "their T.38 offer: 200, switched to T.38" in a.output(), logs(a, b)
    else:
        for log in (a.output(), b.output()):  # no T.38 offer either way, none refused
            assert "T.38 offer" not in log and "T.38 re-INVITE" not in log, logs(a, b)
    assert a.healthz() == 200 and b.healthz() == 200
    assert a.served.stop() == 0 and b.served.stop() == 0


def test_a_number_b_has_no_faxbox_for_fails_permanent_after_one_attempt(
    tmp_path: Path, daemons: list[Served]
) -> None:
    """B answers an INVITE for a number no faxbox of its has with 404; A's job, allowed three
    attempts with retries due at once, fails permanent on the first with the 404's reason, and
    A stays healthy."""
    a_sip, b_sip = sip_keys(), sip_keys()
    a_sip.update(proxy_host=HOST, proxy_port=b_sip["listen_port"])
    b_sip.update(proxy_host=HOST, proxy_port=a_sip["listen_port"])
    a, b = configure(tmp_path, "a", a_sip), configure(tmp_path, "b", b_sip)
    sender(a)
    receiver(b)
    b.start(daemons)
    a.start(daemons)

    fax_id = a.mail(f"+14155550999@{A_DOMAIN}", 1)
    failed = poll(finished(a, fax_id), "A's job to finish", a, b)

    assert (failed["status"], failed["attempts"]) == ("failed", 1), failed
    tx = failed["tx_result"]
    assert tx["success"] is False and tx["sip_code"] == 404, tx
    assert tx["result_text"] == "SIP 404 Not Found", tx
    assert tx["error_message"] == "SIP 404 Not Found", tx
    assert tx["result_code"] == -1, tx  # Q.850 cause 1, unallocated number (RFC 3398)
    assert tx["pages_sent"] == 0 and tx.get("media") is None, tx
    assert [a["failure_class"] for a in failed["attempts_log"]] == ["permanent"], failed
    assert b.inbox() == [] and b.incoming() == []
    assert a.healthz() == 200 and b.healthz() == 200


# Through a real proxy and registrar, and through a media gateway that is not ours

# kamailio routes an INVITE to the registered contacts of its Request-URI user, and hands B
# the INVITE with the Request-URI rewritten to B's Contact, whose user is B's username: B
# registers under its faxbox's number (the DID as SIP user, as many PBXs and carriers
# provision), so that user is the dialled number B's inbound line matches.
A_USER, A_PASSWORD = "gwa", "gwa-secret"
B_PASSWORD = "b-secret"


def through_kamailio(
    tmp_path: Path,
    kamailio_factory: KamailioFactory,  # noqa: F811
    *,
    a_keys: dict[str, Any],
    link: RtpengineLink | None = None,
) -> tuple[Gateway, Gateway, Kamailio]:
    kam = kamailio_factory(
        KamailioConfig(users={A_USER: A_PASSWORD, B_NUMBER: B_PASSWORD}, rtpengine=link)
    )
    common = {"proxy_host": kam.host, "proxy_port": kam.port, "domain": kam.domain}
    b_sip = sip_keys(**common, username=B_NUMBER, password=B_PASSWORD, register=True)
    a_sip = sip_keys(**common, username=A_USER, password=A_PASSWORD, **a_keys)
    a, b = configure(tmp_path, "a", a_sip), configure(tmp_path, "b", b_sip)
    sender(a)
    receiver(b)
    return a, b, kam


def test_through_kamailio_b_registers_and_a_authenticates(
    tmp_path: Path,
    daemons: list[Served],
    kamailio_factory: KamailioFactory,  # noqa: F811
) -> None:
    """B REGISTERs at kamailio with digest (401), A sends to kamailio over TCP and answers its
    407; kamailio finds B by its registration and relays over UDP, record-routing the
    dialog, so B's T.38 re-INVITE and A's BYE cross it too. B unregisters when it stops."""
    a, b, kam = through_kamailio(tmp_path, kamailio_factory, a_keys={"transport": "tcp"})
    b.start(daemons)
    [contact] = kam.wait_registered(B_NUMBER)
    assert contact == f"sip:{B_NUMBER}@{HOST}:{b.sip_port}"
    a.start(daemons)

    sent, received = fax_across(a, b, pages=1)

    assert_delivered(sent, received, 1, "t38", logs(a, b))
    assert "our T.38 offer: 200, switched to T.38" in b.output(), logs(a, b)
    kamailio_log = kam.log_text()
    assert f"authenticated {A_USER}" in kamailio_log  # A's INVITE
    assert f"authenticated {B_NUMBER}" in kamailio_log  # B's REGISTER
    # Record-routed: besides A's two INVITEs (challenged, then with credentials; over TCP,
    # never retransmitted) B's re-INVITE and A's BYE reached kamailio too.
    stats = kamailio_stats(kam)
    assert stats["rcv_requests_invite"] >= 3 and stats["rcv_requests_bye"] >= 1, stats
    assert b.served.stop() == 0 and a.served.stop() == 0
    assert kam.contacts(B_NUMBER) == []  # B's Expires: 0 on the way out


def test_through_rtpengine_a_g711_leg_meets_a_t38_leg(
    tmp_path: Path,
    daemons: list[Served],
    kamailio_factory: KamailioFactory,  # noqa: F811
    rtpengine: Rtpengine,  # noqa: F811
) -> None:
    """kamailio puts rtpengine in the media path with T.38=force on the INVITE: B (t38 =
    "accept") is offered T.38 alone and answers T.38, A (t38 = "off") is answered audio, and
    rtpengine's own T.38 gateway (spandsp's t38_gateway, not our code) turns A's G.711 fax
    tones into B's IFPs and back, in real time. One page."""
    link = RtpengineLink(rtpengine.ng_port, offer_flags="T.38=force ICE=remove")
    a, b, kam = through_kamailio(tmp_path, kamailio_factory, a_keys={"t38": "off"}, link=link)
    b.start(daemons)
    kam.wait_registered(B_NUMBER)
    a.start(daemons)

    sent, received = fax_across(a, b, pages=1)

    assert_delivered(sent, received, 1, "g711", logs(a, b))
    # B's leg was T.38 from the INVITE on: its log says which media it received over.
    assert "1 page(s), OK (t38)" in b.output(), logs(a, b)
    assert "T.38 re-INVITE" not in b.output()  # nobody re-INVITEd: the INVITE was T.38
    # rtpengine's account of the call, at its delete (kamailio sends it with the BYE): A's
    # audio and B's T.38 legs, both with packets, both to ports of the gateways' RTP ranges.
    legs = poll(lambda: rtpengine_legs(rtpengine), "rtpengine's final stats", a, b)
    assert set(legs) == {"audio over RTP/AVP", "image over udptl"}, legs
    (codec, a_port, a_packets), (t38, b_port, b_packets) = (
        legs["audio over RTP/AVP"],
        legs["image over udptl"],
    )
    assert codec in ("PCMU/8000", "PCMA/8000") and t38 == "t38", legs
    assert a.sip["rtp_port_min"] <= a_port <= a.sip["rtp_port_max"], legs
    assert b.sip["rtp_port_min"] <= b_port <= b.sip["rtp_port_max"], legs
    assert a_packets > 0 and b_packets > 0, legs
    assert a.served.stop() == 0 and b.served.stop() == 0


def kamailio_stats(kam: Kamailio) -> dict[str, int]:
    """kamailio's core counters (``core:rcv_requests_invite = 3`` → {"rcv_requests_invite": 3})."""
    stats = {}
    for line in kam.rpc("stats.get_statistics", "core:"):
        name, _, value = str(line).partition(" = ")
        stats[name.removeprefix("core:")] = int(value)
    return stats


_LEG = re.compile(
    r"Media #\d+ \((?P<media>[^)]+)\) using (?P<codec>\S+)\n"
    r".*?Port +[\d.]+:\d+ <> +[\d.]+:(?P<port>\d+), SSRC \S+ (?P<packets>\d+) p"
)


def rtpengine_legs(engine: Rtpengine) -> dict[str, tuple[str, int, int]]:
    """The legs of rtpengine's "Final packet stats" (logged when a call is deleted): media →
    (codec, the far end's port, packets it sent us); empty before the delete."""
    text = engine.log_text()
    if "Final packet stats" not in text:
        return {}
    stats = text.split("Final packet stats", 1)[1]
    return {
        m["media"]: (m["codec"], int(m["port"]), int(m["packets"])) for m in _LEG.finditer(stats)
    }
