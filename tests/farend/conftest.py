"""The far-end fixtures for this package's own tests; elsewhere, import them the same way."""

from tests.farend.fixtures import kamailio, kamailio_factory, rtpengine, sipp  # noqa: F401
