"""Dialogs (RFC 3261 §12): made from an INVITE and its answer, they route our in-dialog
requests and keep both sequence numbers."""

from __future__ import annotations

import pytest

from gateway.sip.dialog import Dialog
from gateway.sip.message import Headers, Request, Response, parse_message, response_for


def invite(*extra: tuple[str, str], uri: str = "sip:+15551230000@pbx.example") -> Request:
    return Request(
        "INVITE",
        uri,
        Headers(
            (
                ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1"),
                ("Max-Forwards", "70"),
                ("From", '"Fax" <sip:fax@gw.example>;tag=caller1'),
                ("To", "<sip:+15551230000@pbx.example>"),
                ("Call-ID", "call-1@gw.example"),
                ("CSeq", "7 INVITE"),
                ("Contact", "<sip:fax@192.0.2.1:5060>"),
                *extra,
            )
        ),
        b"v=0\r\n",
    )


def answer(request: Request, *extra: tuple[str, str]) -> Response:
    return response_for(
        request,
        200,
        to_tag="callee1",
        headers=(("Contact", "<sip:pbx@198.51.100.7:5080;transport=tcp>"), *extra),
    )


RECORD_ROUTES = (
    ("Record-Route", "<sip:p2.example;lr>"),  # added last, by the proxy nearest the callee
    ("Record-Route", "<sip:p1.example;lr;ftag=x>"),
)


def test_uac_dialog_takes_tags_target_and_reversed_record_route_from_the_2xx() -> None:
    request = invite(*RECORD_ROUTES)
    dialog = Dialog.from_uac(request, answer(request))
    assert dialog.id == ("call-1@gw.example", "caller1", "callee1")
    assert dialog.remote_target == "sip:pbx@198.51.100.7:5080;transport=tcp"
    assert dialog.route_set == ("<sip:p1.example;lr;ftag=x>", "<sip:p2.example;lr>")
    assert dialog.local_seq == 7
    assert dialog.remote_seq is None
    assert dialog.local_contact == "<sip:fax@192.0.2.1:5060>"
    assert not dialog.secure


def test_uas_dialog_keeps_record_route_in_order_and_starts_its_own_cseq() -> None:
    request = invite(*RECORD_ROUTES)
    dialog = Dialog.from_uas(request, "callee1", local_contact="<sip:gw@203.0.113.5>")
    assert dialog.id == ("call-1@gw.example", "callee1", "caller1")
    assert dialog.remote_target == "sip:fax@192.0.2.1:5060"
    assert dialog.route_set == ("<sip:p2.example;lr>", "<sip:p1.example;lr;ftag=x>")
    assert dialog.remote_seq == 7
    bye = dialog.request("BYE")
    assert bye.cseq.number == 1
    assert bye.from_addr.tag == "callee1"
    assert bye.to_addr.tag == "caller1"
    assert bye.to_addr.display_name == "Fax"


def test_in_dialog_request_goes_to_the_remote_target_through_the_route_set() -> None:
    request = invite(*RECORD_ROUTES)
    dialog = Dialog.from_uac(request, answer(request))
    bye = dialog.request("BYE")
    assert bye.uri == "sip:pbx@198.51.100.7:5080;transport=tcp"
    assert bye.headers.get_all("Route") == ("<sip:p1.example;lr;ftag=x>", "<sip:p2.example;lr>")
    assert bye.cseq.number == 8 and bye.cseq.method == "BYE"
    assert bye.call_id == "call-1@gw.example"
    assert bye.headers.get("Max-Forwards") == "70"
    assert "Contact" not in bye.headers  # BYE refreshes nothing
    assert str(dialog.next_hop()) == "sip:p1.example;lr;ftag=x"


def test_each_request_takes_the_next_cseq_and_target_refreshes_carry_our_contact() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    reinvite = dialog.request("INVITE", b"v=0\r\n", "application/sdp")
    update = dialog.request("UPDATE", extra=(("Session-Expires", "1800;refresher=uac"),))
    assert (reinvite.cseq.number, update.cseq.number) == (8, 9)
    assert reinvite.headers.get("Contact") == "<sip:fax@192.0.2.1:5060>"
    assert reinvite.headers.get("Content-Type") == "application/sdp"
    assert reinvite.body == b"v=0\r\n"
    assert update.headers.get("Session-Expires") == "1800;refresher=uac"
    assert "Content-Type" not in update.headers  # no body, no type


def test_ack_reuses_the_invite_cseq_number_and_does_not_advance_it() -> None:
    request = invite(*RECORD_ROUTES)
    dialog = Dialog.from_uac(request, answer(request))
    ack = dialog.ack(7)
    assert ack.method == "ACK"
    assert str(ack.cseq) == "7 ACK"
    assert ack.uri == dialog.remote_target
    assert len(ack.headers.get_all("Route")) == 2
    assert dialog.request("BYE").cseq.number == 8


def test_ack_and_cancel_are_not_ordinary_requests() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    for method in ("ACK", "CANCEL"):
        with pytest.raises(ValueError):
            dialog.request(method)


def test_a_strict_router_becomes_the_request_uri_and_the_target_goes_last() -> None:
    request = invite(("Record-Route", "<sip:old-proxy.example;transport=udp>"))
    dialog = Dialog.from_uac(request, answer(request))
    bye = dialog.request("BYE")
    assert bye.uri == "sip:old-proxy.example;transport=udp"
    assert bye.headers.get_all("Route") == ("<sip:pbx@198.51.100.7:5080;transport=tcp>",)
    assert str(dialog.next_hop()) == "sip:old-proxy.example;transport=udp"


def test_without_record_route_the_next_hop_is_the_remote_target() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    hop = dialog.next_hop()
    assert (hop.host, hop.port, hop.param("transport")) == ("198.51.100.7", 5080, "tcp")


def test_matches_the_peers_requests_and_the_responses_to_ours() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    ours = dialog.request("BYE")
    assert dialog.matches(response_for(ours, 200))
    theirs = Request(
        "BYE",
        "sip:fax@192.0.2.1:5060",
        Headers(
            (
                ("Via", "SIP/2.0/UDP 198.51.100.7:5080;branch=z9hG4bKb1"),
                ("From", "<sip:+15551230000@pbx.example>;tag=callee1"),
                ("To", "<sip:fax@gw.example>;tag=caller1"),
                ("Call-ID", "call-1@gw.example"),
                ("CSeq", "1 BYE"),
            )
        ),
    )
    assert dialog.matches(theirs)
    # Our own request looks like a request from the wrong side; other calls do not match.
    assert not dialog.matches(ours)
    other_call = Request(theirs.method, theirs.uri, theirs.headers.set("Call-ID", "x"))
    assert not dialog.matches(other_call)
    other_tag = theirs.headers.set("From", "<sip:+15551230000@pbx.example>;tag=fork2")
    assert not dialog.matches(Request(theirs.method, theirs.uri, other_tag))


def test_a_peer_without_tags_is_matched_as_no_tag() -> None:
    request = invite()
    untagged = response_for(request, 200, headers=(("Contact", "<sip:old@198.51.100.9>"),))
    dialog = Dialog.from_uac(request, untagged)
    assert dialog.remote_tag == ""
    assert dialog.matches(response_for(dialog.request("BYE"), 200))


def test_remote_cseq_must_not_go_backwards() -> None:
    dialog = Dialog.from_uas(invite(), "callee1")

    def from_peer(number: int, method: str) -> Request:
        return Request(
            method,
            "sip:x@192.0.2.9",
            Headers((("CSeq", f"{number} {method}"), ("Call-ID", "call-1@gw.example"))),
        )

    assert dialog.accept_remote_seq(from_peer(8, "INVITE"))
    assert dialog.accept_remote_seq(from_peer(8, "ACK"))  # the ACK shares its INVITE's number
    assert dialog.accept_remote_seq(from_peer(9, "BYE"))
    assert not dialog.accept_remote_seq(from_peer(8, "UPDATE"))  # out of order: answer 500
    assert dialog.remote_seq == 9


def test_the_first_request_from_the_peer_sets_the_remote_cseq_on_the_callers_side() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    peer_request = Request("INFO", "sip:x@192.0.2.9", Headers((("CSeq", "1 INFO"),)))
    assert dialog.accept_remote_seq(peer_request)
    assert dialog.remote_seq == 1


def test_target_refresh_takes_the_new_contact_and_ignores_a_missing_one() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    moved = Request("INVITE", "sip:x@y", Headers((("Contact", '"PBX" <sip:pbx@198.51.100.8>'),)))
    dialog.refresh_target(moved)
    assert dialog.remote_target == "sip:pbx@198.51.100.8"
    dialog.refresh_target(Request("INVITE", "sip:x@y", Headers(())))
    dialog.refresh_target(Request("INVITE", "sip:x@y", Headers((("Contact", "<broken"),))))
    assert dialog.remote_target == "sip:pbx@198.51.100.8"


def test_a_dialog_built_request_parses_back_once_a_via_is_added() -> None:
    request = invite(*RECORD_ROUTES)
    dialog = Dialog.from_uac(request, answer(request))
    built = dialog.request("INVITE", b"v=0\r\n", "application/sdp")
    with_via = Request(
        built.method,
        built.uri,
        Headers((("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1"), *built.headers)),
        built.body,
    )
    parsed = parse_message(with_via.to_bytes())
    assert isinstance(parsed, Request)
    assert parsed.headers == with_via.headers
    assert parsed.body == b"v=0\r\n"


def test_sips_request_uri_makes_a_secure_dialog() -> None:
    request = invite(uri="sips:+15551230000@pbx.example")
    assert Dialog.from_uac(request, answer(request)).secure


# -- what counts as a session refresh (gateway.sip.calls) ------------------------------------

AUDIO = (
    b"v=0\r\no=- 1 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)


def test_a_refresh_keeps_the_version_and_the_media() -> None:
    from gateway.sip.calls import unchanged_offer

    assert unchanged_offer(AUDIO, AUDIO)
    assert unchanged_offer(b"", AUDIO)  # an offerless re-INVITE or UPDATE
    assert not unchanged_offer(AUDIO.replace(b" 7 IN", b" 8 IN"), AUDIO)


def test_a_switch_to_t38_without_a_new_version_is_no_refresh() -> None:
    from gateway.sip.calls import unchanged_offer

    t38 = AUDIO.replace(b"m=audio 4000 RTP/AVP 0", b"m=image 4000 udptl t38")
    assert not unchanged_offer(t38, AUDIO)
    moved = AUDIO.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 127.0.0.2")
    assert not unchanged_offer(moved, AUDIO)
