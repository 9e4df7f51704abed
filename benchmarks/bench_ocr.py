"""OCR speed and accuracy on scanned pages made here: A4 pages at 200 dpi, each holding ~12 lines of English
prose typeset in black on white, embedded in a PDF without a text layer (what a flatbed scan of a letter looks
like, without the noise). Prints pages per second through `load_file` (render + OCR + cleaning) and the share of
characters read right (1 - edit distance / length, whitespace ignored).

Run: .venv/bin/python benchmarks/bench_ocr.py [--pages 6] [--font-size 34]
"""

from __future__ import annotations

import argparse
import difflib
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ("river bank heron nests spring rangers counted forty two april water level rose after heavy rain the "
         "bridge was closed for repairs until the end of may and the ferry ran twice a day instead of every hour "
         "farmers moved their cattle to higher fields while volunteers filled sandbags near the old mill").split()


def prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def accuracy(expected: str, found: str) -> float:
    a, b = "".join(expected.split()), "".join(found.split())
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    return same / max(len(a), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--font-size", type=int, default=34, help="pixels at 200 dpi (34 px is about 12 pt)")
    args = parser.parse_args()

    from ingest import ocr
    from ingest.loaders import load_file
    from pdf_factory import image_scan_pdf

    rng = random.Random(7)
    texts = [prose(rng, 8) for _ in range(args.pages)]
    with tempfile.TemporaryDirectory() as tmp:
        path = image_scan_pdf(Path(tmp) / "scan.pdf", texts, font_size=args.font_size)
        started = time.perf_counter()
        ocr._engine()
        print(f"OCR engine ready in {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        document = load_file(path)
        elapsed = time.perf_counter() - started
    found = {s.page: s.text for s in document.sections}
    scores = [accuracy(text, found.get(page, "")) for page, text in enumerate(texts, start=1)]
    print(f"{args.pages} pages in {elapsed:.1f} s: {args.pages / elapsed:.2f} pages/s "
          f"({elapsed / args.pages:.2f} s a page)")
    print(f"characters read right: mean {sum(scores) / len(scores):.3f}, worst page {min(scores):.3f}")


if __name__ == "__main__":
    main()
