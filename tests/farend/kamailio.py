"""A private Kamailio 5.6 (Debian's ``kamailio``): registrar and proxy with digest auth.

No database: the credentials sit in an htable filled by ``event_route[htable:mod-init]`` from
the generated config, usrloc keeps contacts in memory, and the JSON-RPC interface (jsonrpcs
over xhttp, on the SIP TCP port) lets a test read the location table.

What the generated script does, in request order:
  maxfwd (483) and sanity (malformed requests dropped); CANCEL and retransmissions through tm;
  in-dialog requests follow the record-routed path (loose_route);
  OPTIONS to the proxy itself answered 200 (the readiness probe);
  every other initial request but ACK/CANCEL authenticates with digest: REGISTER gets 401, the
  rest 407 (auth_challenge); the auth user must be the To user of a REGISTER; requests from a
  ``trusted`` source address skip this, like a carrier's peering;
  REGISTER saved into the in-memory location table;
  INVITE to a number matching a ``static_routes`` prefix goes to that fixed address; otherwise
  to the registered contacts of the Request-URI user (404 when none);
  record-routing on INVITE; optional rtpengine on every SDP offer/answer.
Every next hop must be a 127.x address, else 403: the proxy never resolves a name (dns=no) and
never sends anywhere but loopback.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.farend.process import LOOPBACK, Daemon, FarEndError, free_port, wait_until

KAMAILIO = "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

DEFAULT_USERS: Mapping[str, str] = {"gwa": "gwa-secret", "gwb": "gwb-secret"}


@dataclass(frozen=True)
class RtpengineLink:
    """Have kamailio put rtpengine in the media path (its ``rtpengine`` module, ng over UDP).

    ``offer_flags`` go with the initial INVITE's offer, ``reoffer_flags`` with a re-INVITE's, e.g.
    ``"T.38=decode"`` to turn a T.38 re-INVITE into an audio one towards the callee (rtpengine
    then gateways T.38 <-> G.711 itself), or ``"T.38=force"`` to offer the callee T.38 for an
    audio offer. ``answer_flags`` go with every SDP answer."""

    ng_port: int
    offer_flags: str = ""
    reoffer_flags: str = ""
    answer_flags: str = ""


@dataclass(frozen=True)
class KamailioConfig:
    domain: str = "fax.test"
    users: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_USERS))
    # Number prefix (digits, matched with or without a leading +) -> (host, port) over UDP.
    static_routes: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    # Source (host, port) pairs whose requests need no digest.
    trusted: tuple[tuple[str, int], ...] = ()
    algorithm: Literal["MD5", "SHA-256"] = "MD5"
    rtpengine: RtpengineLink | None = None
    # Kamailio's own log level: 2 = info (each routing decision below is logged at info).
    debug: int = 2


def _quote(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.+@:-]*", text):
        raise ValueError(f"refusing to put {text!r} into kamailio.cfg")
    return text


def render_config(config: KamailioConfig, port: int, rpc_secret: str) -> str:
    """The whole kamailio.cfg for one private instance on 127.0.0.1:``port`` (UDP and TCP)."""
    domain = _quote(config.domain)
    users = "\n".join(
        f'    $sht(credentials=>{_quote(user)}) = "{_quote(password)}";'
        for user, password in config.users.items()
    )
    for host, _ in (*config.static_routes.values(), *config.trusted):
        if not host.startswith("127."):
            raise ValueError(f"far ends stay on loopback: {host} is not a 127.x address")
    static = "\n".join(
        f'    if ($rU =~ "^\\+?{_quote(prefix)}") {{\n'
        f'        $du = "sip:{_quote(host)}:{int(dest_port)};transport=udp";\n'
        f'        xlog("L_INFO", "static route $rU -> $du\\n");\n'
        f"        route(RELAY);\n"
        f"    }}"
        for prefix, (host, dest_port) in config.static_routes.items()
    )
    trusted = " || ".join(
        f'($si == "{_quote(host)}" && $sp == {int(src_port)})' for host, src_port in config.trusted
    )
    rtp = config.rtpengine
    rtp_modules = ""
    rtp_offer = rtp_reoffer = ""
    # Kamailio refuses an empty route block.
    rtp_delete = rtp_answer = "    return;\n"
    if rtp is not None:
        rtp_modules = (
            'loadmodule "rtpengine.so"\n'
            f'modparam("rtpengine", "rtpengine_sock", "udp:{LOOPBACK}:{int(rtp.ng_port)}")\n'
            # A quick failure if rtpengine is gone, instead of tm's whole timeout.
            'modparam("rtpengine", "rtpengine_tout_ms", 2000)\n'
        )
        rtp_offer = (
            '        if (is_method("INVITE") && has_body("application/sdp")) {\n'
            f'            rtpengine_offer("{_quote_flags(rtp.offer_flags)}");\n'
            '            t_on_reply("MEDIA_REPLY");\n'
            "        }\n"
        )
        rtp_reoffer = (
            '        if (is_method("INVITE") && has_body("application/sdp")) {\n'
            f'            rtpengine_offer("{_quote_flags(rtp.reoffer_flags)}");\n'
            '            t_on_reply("MEDIA_REPLY");\n'
            "        }\n"
            '        if (is_method("BYE")) { rtpengine_delete(); }\n'
        )
        rtp_delete = "    if (!has_totag()) { rtpengine_delete(); }\n"
        rtp_answer = (
            '    if (has_body("application/sdp")) {\n'
            f'        rtpengine_answer("{_quote_flags(rtp.answer_flags)}");\n'
            "    }\n"
        )
    return _TEMPLATE.format(
        debug=int(config.debug),
        port=int(port),
        domain=domain,
        modules=MODULES,
        algorithm=config.algorithm,
        users=users,
        secret=_quote(rpc_secret),
        static=static,
        trusted=f"if ({trusted}) {{ return; }}" if trusted else "",
        rtp_modules=rtp_modules,
        rtp_offer=rtp_offer,
        rtp_reoffer=rtp_reoffer,
        rtp_delete=rtp_delete,
        rtp_answer=rtp_answer,
    )


def _quote_flags(flags: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.=\- ]*", flags):
        raise ValueError(f"refusing rtpengine flags {flags!r}")
    return flags


# Doubled braces are literal braces of the Kamailio script.
_TEMPLATE = """#!KAMAILIO
# Generated by tests/farend/kamailio.py for one test; not a production config.

debug={debug}
log_stderror=yes
log_prefix="{{$mt $rm $ci}} "
children=2
tcp_children=2
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="{domain}"
# Nothing may leave loopback: no DNS at all, no reverse lookups, no automatic aliases.
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
use_dns_failover=off
dns_try_ipv6=no
dns_try_naptr=no
dns_srv_lb=no
server_header="Server: farend-kamailio"
user_agent_header="User-Agent: farend-kamailio"
mpath="{modules}"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
{rtp_modules}
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "default_expires", 600)
modparam("auth", "algorithm", "{algorithm}")
# Check nc of qop=auth credentials (a replayed nc is refused), as a careful carrier edge does.
modparam("auth", "nonce_count", 1)
modparam("htable", "htable", "credentials=>size=4;")
modparam("rr", "enable_full_lr", 1)
modparam("rr", "append_fromtag", 1)
# JSON-RPC only over HTTP on our own TCP port: no FIFO or datagram socket in a system path.
modparam("jsonrpcs", "transport", 1)
modparam("jsonrpcs", "pretty_format", 0)
# Short tm timers keep failing tests short; far ends are all on loopback.
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 30000)

event_route[htable:mod-init] {{
{users}
}}

event_route[xhttp:request] {{
    # The RPC door is for this test only: a per-instance secret in the path.
    if ($si == "127.0.0.1" && $hu == "/RPC/{secret}") {{
        jsonrpc_dispatch();
    }} else {{
        xhttp_reply("403", "Forbidden", "text/plain", "forbidden");
    }}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check()) {{
        xlog("L_WARN", "malformed request from $si:$sp dropped\\n");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (!is_method("ACK")) {{
        if (t_precheck_trans()) {{
            t_check_trans();
            exit;
        }}
        t_check_trans();
    }}
    route(WITHINDLG);

    remove_hf("Route");
    if (is_method("INVITE")) {{
        record_route();
    }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    route(AUTH);
    if (is_method("REGISTER")) {{
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if ($rU == $null) {{
        sl_send_reply("484", "Address Incomplete");
        exit;
    }}
{static}
    route(LOCATION);
}}

route[AUTH] {{
    if (is_method("ACK|CANCEL")) {{
        return;
    }}
    {trusted}
    if ($au == $null) {{
        auth_challenge("{domain}", "1");
        exit;
    }}
    $var(password) = $sht(credentials=>$au);
    if ($var(password) == $null) {{
        xlog("L_INFO", "unknown auth user $au from $si:$sp\\n");
        auth_challenge("{domain}", "1");
        exit;
    }}
    if (!pv_auth_check("{domain}", "$var(password)", "0", "0")) {{
        xlog("L_INFO", "digest for $au failed ($rc)\\n");
        auth_challenge("{domain}", "1");
        exit;
    }}
    if (is_method("REGISTER") && $au != $tU) {{
        sl_send_reply("403", "Auth User Mismatch");
        exit;
    }}
    xlog("L_INFO", "authenticated $au\\n");
    consume_credentials();
}}

route[LOCATION] {{
    if (!lookup("location")) {{
        xlog("L_INFO", "no contact for $rU\\n");
        send_reply("404", "Not Found");
        exit;
    }}
    route(RELAY);
}}

route[WITHINDLG] {{
    if (!has_totag()) {{
        return;
    }}
    if (loose_route()) {{
{rtp_reoffer}        route(RELAY);
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    sl_send_reply("404", "Not Here");
    exit;
}}

route[RELAY] {{
    if (!($nh(d) =~ "^127\\.")) {{
        xlog("L_WARN", "refusing next hop $nh(d): loopback only\\n");
        send_reply("403", "Loopback Only");
        exit;
    }}
    if (!has_totag()) {{
{rtp_offer}        t_on_failure("FAILED");
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

onreply_route[MEDIA_REPLY] {{
{rtp_answer}}}

failure_route[FAILED] {{
{rtp_delete}}}
"""


@dataclass
class Kamailio:
    """A running private kamailio: where to send, who may register, how to read its state."""

    host: str
    port: int
    domain: str
    users: Mapping[str, str]
    directory: Path
    daemon: Daemon
    rpc_secret: str

    @property
    def config_path(self) -> Path:
        return self.directory / "kamailio.cfg"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call (jsonrpcs over xhttp on the SIP TCP port); its ``result``."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/RPC/{self.rpc_secret}",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        # The proxy handler is emptied so that an http_proxy in the environment is never used.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=5) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as error:
            # jsonrpcs answers a failed command with an HTTP error status and a JSON body.
            raise FarEndError(f"kamailio rpc {method}: {error.code} {error.reason}") from None
        if "error" in answer:
            raise FarEndError(f"kamailio rpc {method}: {answer['error']}")
        return answer.get("result")

    def contacts(self, user: str) -> list[str]:
        """The contact URIs registered for ``user`` (empty when none)."""
        try:
            # usrloc keys contacts by user part only (use_domain=0: one domain).
            result = self.rpc("ul.lookup", "location", user)
        except FarEndError:
            return []  # ul.lookup answers an error ("AOR not found") rather than no contacts
        found = []
        for item in result.get("Contacts", []) if isinstance(result, dict) else []:
            contact = item.get("Contact", item)
            if isinstance(contact, dict) and "Address" in contact:
                found.append(str(contact["Address"]))
        return found

    def wait_registered(self, user: str, timeout: float = 10.0) -> list[str]:
        wait_until(
            lambda: bool(self.contacts(user)),
            timeout=timeout,
            what=f"registration of {user}",
            daemon=self.daemon,
        )
        return self.contacts(user)

    def options(self, timeout: float = 1.0) -> int | None:
        """Send one OPTIONS over UDP; the status code, or None when nothing answered."""
        return options_status(self.host, self.port, timeout)

    def log_text(self) -> str:
        return self.daemon.log_text()

    def stop(self) -> None:
        self.daemon.stop()


def options_status(host: str, port: int, timeout: float) -> int | None:
    """A bare OPTIONS to sip:host:port over UDP from an ephemeral port; the reply's status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        local = s.getsockname()[1]
        branch = f"z9hG4bK-probe-{local}"
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{local};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:probe@{LOOPBACK}>;tag=probe{local}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: probe-{local}@{LOOPBACK}\r\n"
            f"CSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n"
        )
        s.sendto(request.encode(), (host, port))
        s.settimeout(timeout)
        try:
            data = s.recv(65535)
        except TimeoutError:
            return None
    match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
    return int(match.group(1)) if match else None


@contextmanager
def running_kamailio(
    directory: Path, config: KamailioConfig | None = None, *, start_timeout: float = 20.0
) -> Iterator[Kamailio]:
    """Start a private kamailio in ``directory`` (created), wait until it answers OPTIONS, and
    stop it (with all its workers) when the block ends."""
    config = config or KamailioConfig()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(("udp", "tcp"))
    secret = f"s{port}x{id(directory) & 0xFFFFFF:x}"
    cfg = directory / "kamailio.cfg"
    cfg.write_text(render_config(config, port, secret))
    argv = [
        KAMAILIO,
        "-f",
        str(cfg),
        "-DD",  # stay in the foreground as the parent of its workers
        "-E",  # log to stderr (our log file), never syslog
        "-Y",
        str(directory),  # runtime dir: nothing under /run/kamailio
        "-w",
        str(directory),
        "-m",
        "32",
        "-M",
        "4",
    ]
    daemon = Daemon("kamailio", argv, directory / "kamailio.log", directory)
    daemon.start()
    kamailio = Kamailio(LOOPBACK, port, config.domain, config.users, directory, daemon, secret)
    try:
        wait_until(
            lambda: options_status(LOOPBACK, port, 0.2) == 200,
            timeout=start_timeout,
            what="200 to OPTIONS",
            daemon=daemon,
        )
        yield kamailio
    finally:
        daemon.stop()
