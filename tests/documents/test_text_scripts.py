# ruff: noqa: RUF001 - the strings are in other scripts on purpose
"""Text bodies in the charsets real clients send are faxed legibly (read back by Tesseract), and
text no font here can draw is refused while the sender waits, never accepted and failed later."""

from __future__ import annotations

import base64
import io
import quopri
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from gateway.documents.pool import RenderPool
from gateway.documents.render import RenderOptions, render_fax
from gateway.errors import UndrawableTextError
from gateway.message import IntakeOptions, read_message
from tests.conftest import SmtpHarness, Tenant

HEADERS = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: +14155550100@fax.test\r\n"
    b"Subject: text\r\n"
    b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <text-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
)


def message(body: bytes, charset: str, encoding: str) -> bytes:
    """A single-part text message as mail clients write it (headers, then the encoded body)."""
    if encoding == "base64":
        payload = base64.encodebytes(body)
    elif encoding == "quoted-printable":
        payload = quopri.encodestring(body)
    else:
        payload = body
    payload = payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return (
        HEADERS
        + f"Content-Type: text/plain; charset={charset}\r\n".encode()
        + f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
        + payload
    )


def rendered_text(raw: bytes, language: str, tmp_path: Path) -> str:
    """Intake, render and OCR the fax."""
    parsed = read_message(raw, IntakeOptions())
    fax = render_fax(parsed.documents, RenderOptions(resolution="fine"))
    assert fax.pages == sum(doc.pages for doc in parsed.documents)
    return read_back(fax.tiff, language, tmp_path)


def read_back(tiff: bytes, language: str, tmp_path: Path) -> str:
    """The first page's text by Tesseract, without spaces (it puts them between CJK
    characters)."""
    with Image.open(io.BytesIO(tiff)) as image:
        path = tmp_path / "page.png"
        image.convert("L").save(path, dpi=(204, 196))
    result = subprocess.run(
        ["tesseract", str(path), "-", "-l", language, "--psm", "6"],
        capture_output=True,
        text=True,
        check=True,
    )
    return "".join(result.stdout.split())


def has_language(language: str) -> bool:
    if shutil.which("tesseract") is None:
        return False
    listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
    return language in listed.stdout.split()


def ocr(language: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not has_language(language), reason=f"tesseract {language} missing")


JAPANESE = "東京都千代田区\n請求書を送付いたします。\nご確認ください。\n"
# Outlook writes GBK under the name gb2312; 喆 is one of the GBK characters beyond GB 2312.
CHINESE = "北京市海淀区\n张喆先生：\n请查收发票。谢谢！\n"
RUSSIAN = "Здравствуйте!\nСчёт на оплату номер 42.\nС уважением, Иван Петров\n"
HEBREW = "שלום\nחשבונית מספר 42\nתודה רבה\n"


@ocr("jpn")
def test_iso_2022_jp_body_is_faxed_in_japanese(tmp_path: Path) -> None:
    raw = message(JAPANESE.encode("iso2022_jp"), "ISO-2022-JP", "7bit")
    text = rendered_text(raw, "jpn", tmp_path)
    for word in ("東京都", "請求書", "確認"):
        assert word in text, text


@ocr("chi_sim")
def test_gb2312_body_with_gbk_characters_is_faxed_in_chinese(tmp_path: Path) -> None:
    raw = message(CHINESE.encode("gbk"), '"gb2312"', "base64")
    text = rendered_text(raw, "chi_sim", tmp_path)
    for word in ("北京市", "海淀区", "发票"):
        assert word in text, text


@ocr("rus")
def test_windows_1251_body_is_faxed_in_russian(tmp_path: Path) -> None:
    raw = message(RUSSIAN.encode("cp1251"), '"windows-1251"', "quoted-printable")
    text = rendered_text(raw, "rus", tmp_path)
    for word in ("Здравствуйте", "оплату", "Петров"):
        assert word in text, text


@ocr("heb")
def test_iso_8859_8_body_is_faxed_in_hebrew_right_to_left(tmp_path: Path) -> None:
    raw = message(HEBREW.encode("iso-8859-8"), "iso-8859-8-i", "8bit")
    text = rendered_text(raw, "heb", tmp_path)
    # Tesseract reads Hebrew in logical order: the words come back only if drawn right to left.
    for word in ("שלום", "חשבונית", "תודה"):
        assert word in text, text


@ocr("jpn")
async def test_render_pool_workers_find_the_cjk_fonts(tmp_path: Path) -> None:
    parsed = read_message(
        message(JAPANESE.encode("iso2022_jp"), "iso-2022-jp", "7bit"), IntakeOptions()
    )
    pool = RenderPool(workers=1, per_doc_seconds=60)
    try:
        fax = await pool.render(parsed.documents, RenderOptions(resolution="fine"))
    finally:
        await pool.close()
    assert "請求書" in read_back(fax.tiff, "jpn", tmp_path)


def test_a_gb2312_body_whose_bytes_are_gbk_renders() -> None:
    # The bytes of 喆 are not GB 2312: decoded as Latin-1 they held U+0085, on which
    # raqm_layout() failed and the job died after a 250.
    parsed = read_message(message(CHINESE.encode("gbk"), "gb2312", "8bit"), IntakeOptions())
    assert parsed.body is not None and "张喆" in parsed.body
    assert render_fax(parsed.documents, RenderOptions()).pages == 1


def test_line_separators_that_raqm_rejects_end_lines_instead() -> None:
    raw = message("one\x85two\u2029three\x1cfour\r\n".encode(), "utf-8", "8bit")
    parsed = read_message(raw, IntakeOptions())
    assert render_fax(parsed.documents, RenderOptions()).pages == 1


THAI = "สวัสดีครับ นี่คือใบแจ้งหนี้ของคุณ กรุณาตรวจสอบ\n"


def test_text_in_a_script_without_a_font_is_refused_naming_code_points() -> None:
    with pytest.raises(UndrawableTextError) as caught:
        read_message(message(THAI.encode("utf-8"), "utf-8", "base64"), IntakeOptions())
    assert caught.value.part == "body.txt"
    assert "characters no font on this gateway can draw: U+0E" in caught.value.reason


def test_a_few_undrawable_symbols_are_drawn_as_question_marks() -> None:
    raw = message("Invoice attached, thanks \U0001fa77\U0001fae0\n".encode(), "utf-8", "8bit")
    parsed = read_message(raw, IntakeOptions())
    assert render_fax(parsed.documents, RenderOptions()).pages == 1


async def test_smtp_answers_undrawable_text_with_554_5_6_3(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    out = await smtp.transact(message(THAI.encode("utf-8"), "utf-8", "base64"))
    assert out.final[0] == 554
    assert out.final[1].startswith("5.6.3 body.txt: characters no font on this gateway can draw")
    (entry,) = await smtp.smtplog()
    assert entry.reply_code == 554


@ocr("chi_sim")
def test_a_hebrew_line_with_chinese_in_it_draws_each_in_its_font(tmp_path: Path) -> None:
    # No one font has both: the line is drawn in runs of one font each, in bidi order.
    raw = message("שלום 北京市海淀区 תודה\n".encode(), "utf-8", "8bit")
    assert "北京市海淀区" in rendered_text(raw, "chi_sim", tmp_path)
