"""Check that the question set in ``scripts/sample_qa.json`` agrees with ``sample_docs/``.

The tiny demo model is trained on these questions, and tests assert that its answers cite the right passage,
so every evidence string must really occur in its source, at the stated location: on the stated PDF page
(as pypdf extracts it) or under the stated Markdown heading path. Whitespace is collapsed to single spaces
before matching, because PDF extraction breaks lines where the layout wrapped them.

Run: ``.venv/bin/python scripts/check_sample_qa.py``  (exit status 1 and a list of problems on failure)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QA_PATH = ROOT / "scripts" / "sample_qa.json"
DEV_PATH = ROOT / "scripts" / "sample_qa_dev.json"
DEV_PER_FACT = 2
SAMPLE_DOCS = ROOT / "sample_docs"
MIN_EVIDENCE_WORDS = 8
PARAPHRASES_PER_FACT = 9
"""At least this many, trained (`paraphrases`) and held-out (`held_out`) together; at least one of them held out."""
UNANSWERABLE_KINDS = ("off_topic", "near_miss")
MAX_SAMPLE_DOCS_BYTES = 300_000
NEAR_COPY = 0.7
"""A trained wording sharing this share of its content words with a held-out one (or more) makes that held-out
question nearly trained: "Which kinds of alpaca are there?" against the held-out "What kinds of alpaca are there?"."""
FUNCTION_WORDS = {"a", "an", "the", "is", "are", "do", "does", "i", "my", "what", "which", "how", "of", "to", "in"}
HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
PAGE_LOCATION = re.compile(r"^p\. (\d+)$")


def normalise(text: str) -> str:
    return " ".join(text.split())


def pdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [normalise(page.extract_text() or "") for page in PdfReader(path).pages]


def markdown_sections(path: Path) -> dict[str, str]:
    """Map each heading path ("Camelids > Alpacas") to the text directly under that heading."""
    sections: dict[str, list[str]] = {}
    trail: list[str] = []
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = HEADING.match(line)
        if match:
            level = len(match.group(1))
            trail = trail[: level - 1] + [match.group(2)]
            current = " > ".join(trail)
            sections.setdefault(current, [])
        else:
            sections.setdefault(current, []).append(line)
    return {key: normalise("\n".join(lines)) for key, lines in sections.items()}


class Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked = 0
        self._cache: dict[Path, object] = {}

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def evidence(self, where: str, source: str, evidence: str, location: str | None) -> None:
        """Check one evidence string against its source file and, where given, its location."""
        self.checked += 1
        path = ROOT / source
        if not path.is_file():
            self.fail(where, f"source {source} does not exist")
            return
        wanted = normalise(evidence)
        if len(wanted.split()) < MIN_EVIDENCE_WORDS:
            self.fail(where, f"evidence has fewer than {MIN_EVIDENCE_WORDS} words: {evidence!r}")
        if path.suffix.lower() == ".pdf":
            pages = self._cache.setdefault(path, None) or pdf_pages(path)
            self._cache[path] = pages
            found = [number for number, text in enumerate(pages, start=1) if wanted in text]
            page = PAGE_LOCATION.match(location or "")
            if not found:
                self.fail(where, f"evidence not on any page of {source}: {evidence!r}")
            elif page is None:
                self.fail(where, f"PDF location must look like 'p. 3', got {location!r}")
            elif int(page.group(1)) not in found:
                self.fail(where, f"evidence is on page(s) {found} of {source}, not {location!r}")
        elif path.suffix.lower() == ".md":
            sections = self._cache.setdefault(path, None) or markdown_sections(path)
            self._cache[path] = sections
            found = [heading for heading, text in sections.items() if wanted in text]
            if not found:
                self.fail(where, f"evidence not in {source}: {evidence!r}")
            elif location is not None and location not in found:
                self.fail(where, f"evidence is under {found} in {source}, not {location!r}")
        else:
            text = normalise(path.read_text(encoding="utf-8"))
            if wanted not in text:
                self.fail(where, f"evidence not in {source}: {evidence!r}")


def check(data: dict, dev: dict | None = None) -> Checker:
    """`dev`: the development questions (scripts/sample_qa_dev.json), checked to be new against every wording
    of `data`, trained or held out."""
    checker = Checker()
    factual = data.get("factual", [])
    for index, item in enumerate(factual):
        where = f"factual[{index}] {item.get('question', '')!r}"
        for key in ("question", "answer", "source", "evidence", "location"):
            if not str(item.get(key, "")).strip():
                checker.fail(where, f"missing {key}")
        trained, held = item.get("paraphrases", []), item.get("held_out", [])
        if len(trained) + len(held) < PARAPHRASES_PER_FACT or not held or len(trained) < 2:
            checker.fail(where, f"needs {PARAPHRASES_PER_FACT} paraphrases or more, at least one of them in "
                                f"held_out and two in paraphrases (has {len(trained)} + {len(held)})")
        checker.evidence(where, item.get("source", ""), item.get("evidence", ""), item.get("location"))
    for index, item in enumerate(data.get("chitchat", [])):
        where = f"chitchat[{index}] {item.get('prompt', '')!r}"
        if not item.get("prompt", "").strip() or not item.get("answer", "").strip():
            checker.fail(where, "missing prompt or answer")
        if item.get("utility") not in (1, 2, 3, 4, 5):
            checker.fail(where, f"utility must be 1-5, got {item.get('utility')!r}")
    for index, item in enumerate(data.get("multi_segment", [])):
        where = f"multi_segment[{index}] {item.get('question', '')!r}"
        segments = item.get("segments", [])
        if len(segments) < 2:
            checker.fail(where, "needs at least two segments")
        places = {(seg.get("source"), seg.get("location")) for seg in segments}
        if len(places) != len(segments):
            checker.fail(where, "segments must come from different documents or sections")
        for number, seg in enumerate(segments):
            if not seg.get("answer", "").strip():
                checker.fail(f"{where} segment {number}", "missing answer")
            checker.evidence(f"{where} segment {number}", seg.get("source", ""), seg.get("evidence", ""),
                             seg.get("location"))
    unanswerable = data.get("unanswerable", [])
    for index, item in enumerate(unanswerable):
        where = f"unanswerable[{index}] {item.get('question', '')!r}"
        if not str(item.get("question", "")).strip():
            checker.fail(where, "missing question")
        if item.get("kind") not in UNANSWERABLE_KINDS:
            checker.fail(where, f"kind must be one of {', '.join(UNANSWERABLE_KINDS)}, got {item.get('kind')!r}")
    for kind in UNANSWERABLE_KINDS:
        for held in (False, True):
            if not any(i.get("kind") == kind and bool(i.get("held_out")) == held for i in unanswerable):
                checker.fail("unanswerable", f"needs a{' held-out' if held else ' trained'} {kind} question")
    # A held-out question must be new to the model: no other entry may have the same wording.
    seen: dict[str, str] = {}
    texts = [(f"factual[{i}]", q) for i, item in enumerate(factual)
             for q in [item.get("question", ""), *item.get("paraphrases", []), *item.get("held_out", [])]]
    texts += [(f"unanswerable[{i}]", item.get("question", "")) for i, item in enumerate(unanswerable)]
    texts += [(f"chitchat[{i}]", item.get("prompt", "")) for i, item in enumerate(data.get("chitchat", []))]
    for where, text in texts:
        key = normalise(text).lower().rstrip("?.! ")
        if key in seen:
            checker.fail(where, f"{text!r} is also in {seen[key]}")
        seen.setdefault(key, where)
    # Nor may a trained wording be a near copy of a held-out one, or the held-out figures flatter the model.
    def content(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9]+", text.lower())) - FUNCTION_WORDS

    held = [q for item in factual for q in item.get("held_out", [])]
    held += [item.get("question", "") for item in unanswerable if item.get("held_out")]
    trained = [q for item in factual for q in [item.get("question", ""), *item.get("paraphrases", [])]]
    trained += [item.get("question", "") for item in unanswerable if not item.get("held_out")]
    trained_words = [(other, content(other)) for other in trained]
    def near(words: set[str], other_words: set[str]) -> bool:
        return bool(words) and len(words & other_words) >= NEAR_COPY * len(words | other_words)

    for question in held:
        words = content(question)
        for other, other_words in trained_words:
            if near(words, other_words):
                checker.fail("held_out", f"{question!r} is nearly the trained {other!r}")
    # Development wordings choose between training runs: a near copy of a held-out one would tune the weights to
    # the held-out set, a near copy of a trained one would make the choice on what the model memorised.
    if dev is not None:
        known = [(q, content(q)) for q in held] + trained_words
        dev_texts = []
        for entry in dev.get("factual", []):
            index = entry.get("index")
            where = f"dev factual[{index}]"
            if not isinstance(index, int) or not 0 <= index < len(factual):
                checker.fail(where, "index names no fact of sample_qa.json")
            if len(entry.get("dev", [])) != DEV_PER_FACT:
                checker.fail(where, f"needs {DEV_PER_FACT} development wordings, has {len(entry.get('dev', []))}")
            dev_texts += [(where, q) for q in entry.get("dev", [])]
        if sorted(e.get("index") for e in dev.get("factual", [])) != list(range(len(factual))):
            checker.fail("dev", "needs one entry for each fact of sample_qa.json")
        for index, item in enumerate(dev.get("unanswerable", [])):
            if item.get("kind") not in UNANSWERABLE_KINDS:
                checker.fail(f"dev unanswerable[{index}]", f"kind must be one of {', '.join(UNANSWERABLE_KINDS)}")
            dev_texts.append((f"dev unanswerable[{index}]", item.get("question", "")))
        for where, question in dev_texts:
            key = normalise(question).lower().rstrip("?.! ")
            if key in seen:
                checker.fail(where, f"{question!r} is also in {seen[key]}")
            seen.setdefault(key, where)
            words = content(question)
            for other, other_words in known:
                if near(words, other_words):
                    checker.fail(where, f"{question!r} is nearly {other!r}")
    # Items the demo and the tests rely on by exact wording.
    questions = {item.get("question") for item in factual}
    if "Can you tell me the difference between llamas and alpacas?" not in questions:
        checker.fail("factual", "the llama/alpaca difference question is missing")
    if not any("How often should I water tomatoes in summer?" in item.get("paraphrases", []) for item in factual):
        checker.fail("factual", "the tomato watering paraphrase (the README's first question) is missing")
    prompts = {item.get("prompt") for item in data.get("chitchat", [])}
    if "Leave odd one out: twitter, instagram, whatsapp." not in prompts:
        checker.fail("chitchat", "the odd-one-out prompt is missing")
    used = {item.get("source") for item in factual}
    for doc in sorted(SAMPLE_DOCS.iterdir()):
        if doc.is_file() and f"sample_docs/{doc.name}" not in used:
            checker.fail("factual", f"no question about sample_docs/{doc.name}")
    total = sum(doc.stat().st_size for doc in SAMPLE_DOCS.rglob("*") if doc.is_file())
    if total > MAX_SAMPLE_DOCS_BYTES:
        checker.fail("sample_docs", f"{total} bytes, over the {MAX_SAMPLE_DOCS_BYTES} byte budget")
    return checker


def main() -> int:
    data = json.loads(QA_PATH.read_text(encoding="utf-8"))
    dev = json.loads(DEV_PATH.read_text(encoding="utf-8"))
    checker = check(data, dev)
    print(f"{QA_PATH.relative_to(ROOT)}: {len(data.get('factual', []))} factual, "
          f"{len(data.get('chitchat', []))} chit-chat, {len(data.get('multi_segment', []))} multi-segment, "
          f"{len(data.get('unanswerable', []))} unanswerable, "
          f"{sum(len(e.get('dev', [])) for e in dev.get('factual', [])) + len(dev.get('unanswerable', []))} "
          f"development questions; "
          f"{checker.checked} evidence strings checked")
    for problem in checker.problems:
        print(f"PROBLEM {problem}")
    if checker.problems:
        print(f"{len(checker.problems)} problem(s)")
        return 1
    print("all evidence found at its stated location")
    return 0


if __name__ == "__main__":
    sys.exit(main())
