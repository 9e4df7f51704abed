"""Text of PDF pages that have none: the page is rendered with PDFium (`pypdfium2`) and read by RapidOCR
(`rapidocr-onnxruntime`, PP-OCR detection, direction and recognition models run by ONNX Runtime). Both install
from PyPI with their models inside the wheels, so OCR works offline with nothing to download.

One engine per process, created on first use (under a second) and shared by every ingest; calls take turns.
"""

from __future__ import annotations

import threading

RENDER_DPI = 200
"""Scans are usually made at 200-300 dpi; 200 keeps body text legible to the recogniser at half the pixels."""
MAX_PIXELS = 12_000_000
"""A page larger than this at RENDER_DPI (a poster, a drawing, a hostile MediaBox) is rendered smaller, so one
page costs at most ~36 MB of pixels."""
BLANK_SPREAD = 2.0
"""A rendered page whose grey levels vary less than this (standard deviation, 0-255) is blank: not sent to OCR."""

_ENGINE = None
_ENGINE_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()


class OcrUnavailable(RuntimeError):
    """The OCR packages are not installed or their models do not load."""


def _engine():
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise OcrUnavailable(
                    f"the OCR engine is not installed ({exc.name or exc}); reinstall selfrag-chat, or "
                    "`pip install rapidocr-onnxruntime pypdfium2`") from exc
            try:
                _ENGINE = RapidOCR()
            except Exception as exc:
                raise OcrUnavailable(f"the OCR models did not load ({type(exc).__name__}: {exc})") from exc
        return _ENGINE


def open_pdf(data: bytes, password: str | None):
    """A PDFium document for rendering pages (the caller closes it)."""
    try:
        import pypdfium2
    except ImportError as exc:
        raise OcrUnavailable("the PDF renderer is not installed (pypdfium2); reinstall selfrag-chat, or "
                             "`pip install pypdfium2`") from exc
    return pypdfium2.PdfDocument(data, password=password or None)


def render_page(document, index: int):
    """Page `index` (0-based) as a greyscale numpy array at RENDER_DPI, or smaller for a huge page."""
    import numpy as np

    page = document[index]
    try:
        width, height = page.get_size()  # points (1/72 inch)
        scale = RENDER_DPI / 72
        if width * height * scale * scale > MAX_PIXELS:
            scale = (MAX_PIXELS / max(width * height, 1.0)) ** 0.5
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            image = np.array(bitmap.to_numpy(), copy=True)
        finally:
            bitmap.close()
    finally:
        page.close()
    if image.ndim == 3:
        image = image[:, :, 0]
    return image


def read_image(image) -> str:
    """The text in a greyscale page image: lines in reading order, a blank line where the gap above a line is
    larger than a line's height (a new paragraph). Empty for a blank page."""
    import numpy as np

    if image.size == 0 or float(np.std(image)) < BLANK_SPREAD:
        return ""
    engine = _engine()
    rgb = np.ascontiguousarray(np.stack([image] * 3, axis=-1))
    with _RUN_LOCK:
        result, _ = engine(rgb)
    if not result:
        return ""
    boxes = []
    for box, text, _score in result:
        text = (text or "").strip()
        if not text:
            continue
        ys = [point[1] for point in box]
        xs = [point[0] for point in box]
        boxes.append((min(ys), max(ys), min(xs), text))
    return _reading_order(boxes)


def _reading_order(boxes: list[tuple[float, float, float, str]]) -> str:
    """Group boxes into lines (vertical overlap of more than half a box), lines into paragraphs."""
    boxes.sort(key=lambda b: (b[0], b[2]))
    lines: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        if lines:
            top, bottom = min(b[0] for b in lines[-1]), max(b[1] for b in lines[-1])
            overlap = min(bottom, box[1]) - max(top, box[0])
            if overlap > 0.5 * min(bottom - top, box[1] - box[0]):
                lines[-1].append(box)
                continue
        lines.append([box])
    out: list[str] = []
    previous_bottom, previous_height = None, None
    for line in lines:
        top, bottom = min(b[0] for b in line), max(b[1] for b in line)
        text = " ".join(b[3] for b in sorted(line, key=lambda b: b[2]))
        if previous_bottom is not None and top - previous_bottom > (previous_height or 0):
            out.append("")
        out.append(text)
        previous_bottom, previous_height = bottom, bottom - top
    return "\n".join(out)
