"""PDF rendition of a fax TIFF, embedding each page's CCITT data as it is (no re-encoding).

PDF's CCITTFaxDecode filter takes T.4 1-D, T.4 2-D and T.6 data directly, so every page of our
TIFF becomes one image XObject whose stream is the TIFF strip byte for byte: the PDF is as small
as the fax and is produced in microseconds. A minimal writer is enough (one page object, one
image, one content stream per page) and needs neither img2pdf nor pikepdf. TIFFs we did not
write and that do not fit (several strips, bit-reversed data) are decoded by Pillow and saved
through its PDF writer instead.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageSequence

from gateway.documents.tiffout import TiffPage, read_pages


def tiff_to_pdf(tiff: bytes) -> bytes:
    """A PDF with one page per TIFF page, each at the page's physical size."""
    try:
        pages = read_pages(tiff)
    except (ValueError, KeyError, IndexError, OverflowError, struct.error):
        return _decode_and_save(tiff)
    return _write_pdf(pages)


def _decode_and_save(tiff: bytes) -> bytes:
    with Image.open(io.BytesIO(tiff)) as image:
        frames = [frame.convert("1") for frame in ImageSequence.Iterator(image)]
        dpi = image.info.get("dpi", (204, 196))
    out = io.BytesIO()
    # Pillow's PDF writer cannot express non-square pixels; the x resolution sets the page size
    # and the y axis follows the frame's rows.
    frames[0].save(out, "PDF", save_all=True, append_images=frames[1:], resolution=float(dpi[0]))
    return out.getvalue()


def _image_dict(page: TiffPage) -> bytes:
    if page.compression == 4:
        k = -1
    elif page.t4_options & 1:
        k = 4 if page.y_dpi > 150 else 2  # 2-D: K bounds the run of 2-D lines (T.4)
    else:
        k = 0
    parms = f"/K {k} /Columns {page.width} /Rows {page.rows}"
    if page.t4_options & 4:
        parms += " /EncodedByteAlign true"
    if not page.min_is_white:
        parms += " /BlackIs1 true"
    return (
        f"<< /Type /XObject /Subtype /Image /Width {page.width} /Height {page.rows}"
        f" /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode"
        f" /DecodeParms << {parms} >> /Length {len(page.data)} >>"
    ).encode()


def _write_pdf(pages: list[TiffPage]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []

    def obj(body: bytes, stream: bytes | None = None) -> int:
        offsets.append(len(out))
        number = len(offsets)
        out.extend(f"{number} 0 obj\n".encode() + body)
        if stream is not None:
            out.extend(b"\nstream\n" + stream + b"\nendstream")
        out.extend(b"\nendobj\n")
        return number

    # Objects 1 (catalog) and 2 (page tree) are written last, so reserve their numbers now.
    offsets += [0, 0]
    kids: list[int] = []
    for page in pages:
        w_pt = page.width * 72 / page.x_dpi
        h_pt = page.rows * 72 / page.y_dpi
        image = obj(_image_dict(page), page.data)
        content = f"q {w_pt:.3f} 0 0 {h_pt:.3f} 0 0 cm /Im0 Do Q".encode()
        contents = obj(f"<< /Length {len(content)} >>".encode(), content)
        page_dict = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.3f} {h_pt:.3f}]"
            f" /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {contents} 0 R >>"
        )
        kids.append(obj(page_dict.encode()))
    offsets[0] = len(out)
    out.extend(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
    offsets[1] = len(out)
    refs = " ".join(f"{k} 0 R" for k in kids)
    out.extend(f"2 0 obj\n<< /Type /Pages /Kids [{refs}] /Count {len(kids)} >>\nendobj\n".encode())
    xref_at = len(out)
    out.extend(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.extend(f"{offset:010d} 00000 n \n".encode())
    trailer = f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n"
    out.extend(trailer.encode())
    return bytes(out)
