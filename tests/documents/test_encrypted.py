"""Encrypted PDFs: one anyone may open (permissions only) is faxed; one that needs a password,
or whose encryption cannot be read, is refused with a reason that says so."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from gateway.documents.inspect import InspectLimits, inspect_binary
from gateway.documents.render import RenderOptions, render_fax
from gateway.errors import DocumentError
from gateway.models import DocumentKind, SourceDocument
from tests.malformed import (
    encrypted_pdf,
    pdf_with_unknown_crypt_filter,
    pdf_with_unknown_encryption_revision,
    pdf_with_unknown_encryption_version,
    pdf_with_unknown_security_handler,
)

ALGORITHMS = ["RC4-40", "RC4-128", "AES-128", "AES-256-R5", "AES-256"]
NEEDS_A_PASSWORD = "encrypted PDF needs a password"


def inspect(data: bytes, name: str = "doc.pdf") -> SourceDocument:
    return inspect_binary(data, name, InspectLimits())


def inked_pages(tiff: bytes) -> list[bool]:
    with Image.open(io.BytesIO(tiff)) as image:
        return [frame.convert("L").getextrema()[0] == 0 for frame in ImageSequence.Iterator(image)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_permissions_only_pdf_is_counted_and_rendered(algorithm: str) -> None:
    document = inspect(encrypted_pdf(algorithm))
    assert document.kind is DocumentKind.PDF
    assert document.pages == 2
    fax = render_fax([document], RenderOptions())
    assert fax.pages == 2
    assert inked_pages(fax.tiff) == [True, True]  # the text was decrypted and drawn


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pdf_that_needs_a_password_is_refused(algorithm: str) -> None:
    data = encrypted_pdf(algorithm, user_password="secret")
    with pytest.raises(DocumentError) as at_intake:
        inspect(data, "locked.pdf")
    assert (at_intake.value.part, at_intake.value.reason) == ("locked.pdf", NEEDS_A_PASSWORD)
    with pytest.raises(DocumentError) as at_render:
        render_fax([SourceDocument(DocumentKind.PDF, data, "locked.pdf")], RenderOptions())
    assert at_render.value.reason == NEEDS_A_PASSWORD


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (
            pdf_with_unknown_security_handler,
            "PDF encryption not supported (only Standard PDF encryption handler is available)",
        ),
        (
            pdf_with_unknown_encryption_version,
            "PDF encryption not supported (Encryption V=7 NOT supported)",
        ),
        (
            pdf_with_unknown_crypt_filter,
            "PDF encryption not supported (StmF Method /AESV9 NOT supported)",
        ),
        (pdf_with_unknown_encryption_revision, "PDF encryption not supported (revision R=9)"),
    ],
    ids=["handler", "version", "crypt-filter", "revision"],
)
def test_encryption_that_cannot_be_read_is_a_document_error(build, reason: str) -> None:
    with pytest.raises(DocumentError) as error:
        inspect(build(), "odd.pdf")
    assert (error.value.part, error.value.reason) == ("odd.pdf", reason)


def test_unknown_security_handler_is_named_at_render_time_too() -> None:
    data = pdf_with_unknown_security_handler()
    with pytest.raises(DocumentError) as error:
        render_fax([SourceDocument(DocumentKind.PDF, data, "odd.pdf")], RenderOptions())
    assert error.value.reason == "PDF encryption not supported (unsupported security scheme)"


# The interpreter below runs the real inspect without the AES package, as a broken install
# would: pypdf then raises its DependencyError, which once reached the SMTP edge as a 451.
WITHOUT_CRYPTOGRAPHY = """
import sys
sys.modules["cryptography"] = None  # "import cryptography" now fails
from pathlib import Path
from gateway.documents.inspect import InspectLimits, inspect_binary
from gateway.errors import DocumentError
try:
    inspect_binary(Path(sys.argv[1]).read_bytes(), "aes.pdf", InspectLimits())
except DocumentError as exc:
    print("DocumentError:", exc.reason)
"""


def test_without_the_aes_package_aes_pdfs_are_refused_not_retried(tmp_path: Path) -> None:
    sample = tmp_path / "aes.pdf"
    sample.write_bytes(encrypted_pdf("AES-256"))
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_CRYPTOGRAPHY, str(sample)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "DocumentError: PDF encryption not supported here"
        " (cryptography>=3.1 is required for AES algorithm)"
    )
