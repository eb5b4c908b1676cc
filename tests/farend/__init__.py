"""Real far ends for the SIP tests, each a private instance on 127.0.0.1 (issue 12, §6).

- ``kamailio.py``: Debian's kamailio 5.6 as registrar and proxy with digest auth (no
  database), from a generated config; ``running_kamailio(dir, KamailioConfig(...))``.
- ``rtpengine.py``: Debian's rtpengine 10.5 in userspace, and a bencode/ng client (ping,
  offer, answer, delete, query; T.38 force/decode gatewaying); ``running_rtpengine(dir)``.
- ``sipp.py``: SIPp 3.6.1 with the scenarios in ``scenarios/`` (UAS far ends that refuse,
  challenge, refuse a T.38 re-INVITE, hang up; UACs that call, re-INVITE to T.38, register,
  flood); ``start_sipp`` / ``run_sipp`` give a ``SippResult`` (exit code, statistics, every
  message sent and received).
- ``fixtures.py``: the pytest fixtures (``kamailio``, ``kamailio_factory``, ``rtpengine``,
  ``sipp``) that a test module or conftest imports; ``process.py``: free ports, the child
  process wrapper, and the socket inspection that shows everything stays on loopback.

Nothing here starts, stops or reads the system's own services or their configuration.
"""
