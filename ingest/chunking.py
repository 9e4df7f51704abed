"""Cut a loaded document into passages: sentence-aware windows of roughly 100-200 words with overlap.

A passage never crosses documents, and never crosses a Markdown heading (its heading path must stay true). PDF
passages stay within a page so a citation names the page the words are on; a passage spans two pages only where
a sentence runs across the page break, or where a page holds too little text to stand alone. Each passage's
`title` is what the Self-RAG prompt puts above it: `"{title}\\n{text}"`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ingest.loaders import HEADING_SEPARATOR, LOADER_VERSION, LoadedDocument


# Bump when chunk boundaries change for the same text and settings: stores re-chunk such documents on the next
# ingest instead of keeping passages cut the old way.
CHUNKER_VERSION = 5


def chunking_recipe(chunk_words: int, overlap_words: int) -> str:
    """What decides a document's passages besides its bytes; stored per document to know when to re-chunk.
    The loader's version is part of it: a loader that reads more of a file re-reads it."""
    return f"v{CHUNKER_VERSION}:{chunk_words}/{overlap_words}:L{LOADER_VERSION}"


@dataclass(frozen=True)
class Chunk:
    title: str
    """Document title + section ("Guide > Setup > Linux"), or the document title alone."""
    text: str
    page_start: int | None
    page_end: int | None
    heading: str | None
    ordinal: int
    """Position in the document, 0-based."""

    @property
    def words(self) -> int:
        """Words, counting each Chinese/Japanese/Korean character as one (those scripts put no spaces)."""
        return count_words(self.text)

    def embedding_text(self) -> str:
        """What gets embedded: the prompt form, so a passage is found by its section's words too."""
        return f"{self.title}\n{self.text}"


@dataclass(frozen=True)
class _Sentence:
    text: str
    words: int
    page: int | None
    before: str = " "
    """What separated it from the sentence before in the source ("\n\n", "\n" or " "), kept in passages."""


# A sentence ends at . ! ? (optionally followed by quotes/brackets) before whitespace, at a blank line, or after
# the CJK full stop, exclamation and question marks (。！？), which no space follows.
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"
    r"|\n\s*\n"
    r"|(?:(?<=[。！？])|(?<=[。！？][」』）]))(?![」』）])\s*(?=\S)"
)
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def count_words(text: str) -> int:
    """Words for sizing passages: whitespace-separated runs, and each CJK character on its own."""
    return len(_TOKEN.findall(text))
_LIST_ITEM = re.compile(r"\n(?=\s*(?:(?:[-*+]|\d+[.)])\s|\|))")
"""A line break before a list item or a table row: kept, so lists and tables stay one entry per line."""


_CODE_BLOCK = re.compile(r"^ {0,3}(```|~~~)[^\n]*\n.*?(?:^ {0,3}\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)


def split_sentences(text: str) -> list[str]:
    """Sentences and list items, whitespace-normalised; a fenced code block is one piece that keeps its line
    breaks and indentation (code flattened onto one line reads wrong and cites wrong). Good enough for windows;
    not a linguistic parser."""
    return [piece for piece, _ in _pieces(text)]


def _pieces(text: str) -> list[tuple[str, str]]:
    """`split_sentences` with, for each piece, what separated it from the one before in the source: a blank line
    ("\n\n", a new paragraph), a line break ("\n", a list item, a table row, a code block) or a space."""
    pieces: list[tuple[str, str]] = []
    position = 0
    for block in _CODE_BLOCK.finditer(text):
        pieces.extend(_prose_sentences(text[position:block.start()]))
        code = block.group().strip("\n").rstrip()
        if code:
            after_blank_line = _ENDS_WITH_BLANK_LINE.search(text[position:block.start()]) is not None
            pieces.append((code, "\n\n" if after_blank_line else "\n"))
        position = block.end()
    pieces.extend(_prose_sentences(text[position:]))
    return pieces


_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_ENDS_WITH_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n[ \t\r\f\v]*$")


def _prose_sentences(text: str) -> list[tuple[str, str]]:
    pieces: list[tuple[str, str]] = []
    position, before = 0, " "
    ends = [*_SENTENCE_END.finditer(text), None]
    for end in ends:
        block = text[position:end.start() if end is not None else len(text)]
        for index, item in enumerate(_LIST_ITEM.split(block)):
            item = " ".join(item.split())
            if item:
                pieces.append((item, before if index == 0 else "\n"))
                before = " "
        if end is not None:
            position = end.end()
            if _BLANK_LINE.search(end.group()):
                before = "\n\n"
    return pieces


def chunk_document(doc: LoadedDocument, *, chunk_words: int = 150, overlap_words: int = 30) -> list[Chunk]:
    """Passages of about `chunk_words` words (never more than 4/3 of it), consecutive ones sharing up to
    `overlap_words` words of whole sentences so a fact cut at a boundary is still whole in one of them."""
    if chunk_words < 10:
        raise ValueError(f"chunk_words must be at least 10 (got {chunk_words})")
    overlap_words = max(0, min(overlap_words, chunk_words // 2))
    max_words = chunk_words * 4 // 3

    # Flows are what a window may span: one per PDF page, one per Markdown section.
    flows: list[tuple[str | None, list[_Sentence]]] = []
    for section in doc.sections:
        sentences = [
            piece
            for sentence, before in _pieces(section.text)
            for piece in _split_long(sentence, max_words, section.page, before)
        ]
        if sentences:
            flows.append((section.heading, sentences))
    if doc.kind == "pdf":
        flows = _join_pages(flows, min_words=chunk_words // 4)

    chunks: list[Chunk] = []
    for heading, sentences in flows:
        for window in _windows(sentences, chunk_words, overlap_words, max_words):
            pages = [s.page for s in window if s.page is not None]
            title = f"{doc.title}{HEADING_SEPARATOR}{heading}" if heading else doc.title
            chunks.append(
                Chunk(
                    title=title,
                    text=_join((s.text, s.before) for s in window),
                    page_start=min(pages) if pages else None,
                    page_end=max(pages) if pages else None,
                    heading=heading,
                    ordinal=len(chunks),
                )
            )
    return chunks


def fit_to_window(chunks: list[Chunk], count_tokens, max_tokens: int) -> list[Chunk]:
    """Split each passage whose embedded text (`title` + text) is longer than the embedding model reads
    (`max_tokens`, counted by `count_tokens(texts) -> counts`), at the sentence boundary nearest its middle (a
    single long sentence at its middle word), until every part fits: words past the window would never be
    embedded. Ordinals are renumbered; page and heading stay those of the passage split."""
    if not chunks:
        return chunks
    out: list[Chunk] = []
    pending = list(chunks)
    counts = dict(zip(range(len(pending)), count_tokens([c.embedding_text() for c in pending])))
    queue = [(chunk, counts[i]) for i, chunk in enumerate(pending)]
    while queue:
        chunk, tokens = queue.pop(0)
        parts = _halves(chunk) if tokens > max_tokens else []
        if len(parts) < 2:
            out.append(chunk)
            continue
        part_counts = count_tokens([p.embedding_text() for p in parts])
        queue[0:0] = list(zip(parts, part_counts))
    return [Chunk(c.title, c.text, c.page_start, c.page_end, c.heading, ordinal) for ordinal, c in enumerate(out)]


def _halves(chunk: Chunk) -> list[Chunk]:
    sentences = _pieces(chunk.text)
    if len(sentences) >= 2:
        total, running, cut = sum(len(s) for s, _ in sentences), 0, 1
        for index, (sentence, _) in enumerate(sentences[:-1], start=1):
            running += len(sentence)
            cut = index
            if running >= total / 2:
                break
        pieces = [_join(sentences[:cut]), _join(sentences[cut:])]
    else:
        tokens = list(_TOKEN.finditer(chunk.text))
        if len(tokens) < 2:
            return []
        middle = tokens[len(tokens) // 2].start()
        pieces = [chunk.text[:middle].rstrip(), chunk.text[middle:].lstrip()]
    return [Chunk(chunk.title, piece, chunk.page_start, chunk.page_end, chunk.heading, chunk.ordinal)
            for piece in pieces if piece]


_SENTENCE_CLOSED = re.compile(r"[.!?:;。！？][\"')\]」』）]*$")
_CJK_EDGE = re.compile(f"[{_CJK}\u3000-\u303f\uff00-\uffef]")


def _join(pieces) -> str:
    """(sentence, what came before it) pairs joined as in the source: paragraphs by a blank line, list items and
    table rows by a line break, a code block on lines of its own, other sentences by a space (none between two
    CJK sentences, which are written without one)."""
    out, previous = "", ""
    for text, before in pieces:
        if out and before == "\n\n":
            out += "\n\n"
        elif out and (before == "\n" or "\n" in text or "\n" in previous):
            out += "\n"
        elif out and not (_CJK_EDGE.match(out[-1]) and _CJK_EDGE.match(text[:1])):
            out += " "
        out += text
        previous = text
    return out


def _join_pages(flows: list[tuple[str | None, list[_Sentence]]], min_words: int) -> list[tuple[str | None, list[_Sentence]]]:
    """Move a sentence cut by a page break onto the next page, and fold pages too short to stand alone forward
    (the last one backward), so windows stay within pages without splitting sentences or making scraps."""
    joined: list[tuple[str | None, list[_Sentence]]] = []
    carry: list[_Sentence] = []
    for index, (heading, sentences) in enumerate(flows):
        sentences = carry + sentences
        carry = []
        is_last = index == len(flows) - 1
        # A sentence runs on when the page ends without closing it and the next page opens in lower case
        # (a footer such as "Page 3" also ends unclosed, but the next page then opens with a capital).
        next_opens_lower = not is_last and flows[index + 1][1][0].text[:1].islower()
        if next_opens_lower and not _SENTENCE_CLOSED.search(sentences[-1].text):
            carry = [sentences.pop()]
        if not is_last and sum(s.words for s in sentences) < min_words:
            carry = sentences + carry
            continue
        if sentences:
            joined.append((heading, sentences))
    if carry:
        if joined and sum(s.words for s in carry) < min_words:
            joined[-1][1].extend(carry)
        else:
            joined.append((flows[-1][0], carry))
    if joined and len(joined) > 1 and sum(s.words for s in joined[-1][1]) < min_words:
        heading, tail = joined.pop()
        joined[-1][1].extend(tail)
    return joined


def _split_long(sentence: str, max_words: int, page: int | None, before: str = " ") -> list[_Sentence]:
    """A "sentence" longer than a window (a table, a run-on line without punctuation, CJK text without stops) is
    cut into word runs, keeping the text between them as it was (no spaces put between CJK characters)."""
    tokens = list(_TOKEN.finditer(sentence))
    if len(tokens) <= max_words:
        return [_Sentence(sentence, len(tokens), page, before)]
    step = max_words * 3 // 4
    if "\n" in sentence:  # a code block: cut between lines, never inside one
        pieces, lines, words = [], [], 0
        for line in sentence.split("\n"):
            count = count_words(line)
            if lines and words + count > step:
                pieces.append(_Sentence("\n".join(lines), words, page))
                lines, words = [], 0
            lines.append(line)
            words += count
        if lines:
            pieces.append(_Sentence("\n".join(lines), words, page))
        if all(piece.words <= max_words for piece in pieces):
            return [dataclasses.replace(pieces[0], before=before), *pieces[1:]]
    pieces = []
    for i in range(0, len(tokens), step):
        run = tokens[i:i + step]
        pieces.append(_Sentence(sentence[run[0].start():run[-1].end()], len(run), page))
    return [dataclasses.replace(pieces[0], before=before), *pieces[1:]]


def _windows(sentences: list[_Sentence], target: int, overlap: int, max_words: int) -> list[list[_Sentence]]:
    windows: list[list[_Sentence]] = []
    start, carried_sentences = 0, 0
    while start < len(sentences):
        end, words = start, 0
        while end < len(sentences) and words < target and (words + sentences[end].words <= max_words or end == start):
            words += sentences[end].words
            end += 1
        window = sentences[start:end]
        if end >= len(sentences):
            fresh = window[carried_sentences:]
            # A short tail would make a weak passage of its own: fold it into the previous one when that fits.
            if windows and sum(s.words for s in fresh) < target // 4:
                merged = windows[-1] + fresh
                if sum(s.words for s in merged) <= max_words + target // 4:
                    windows[-1] = merged
                    break
            windows.append(window)
            break
        windows.append(window)
        # The next window starts with the trailing whole sentences that fit in the overlap budget.
        back, carried = end, 0
        while back - 1 > start and carried + sentences[back - 1].words <= overlap:
            back -= 1
            carried += sentences[back].words
        start, carried_sentences = back, end - back
    return windows
