"""Conversations kept on this machine, in SQLite (`locations.history_db_path()`).

Each turn keeps the whole `Answer` as JSON (so a reopened conversation renders exactly as it did, markers,
candidates and sources included) and, alongside, plain columns and tables for the retrieval decision, the
segments with their critiques and the sources with their verdicts, so the file can be read with any SQLite tool.

No Textual here: the app, export and tests use the same store.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from selfrag_tui.application import locations
from selfrag_tui.selfrag.types import (
    Answer,
    Candidate,
    Critique,
    Passage,
    RetrievalDecision,
    Segment,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    ordinal         INTEGER NOT NULL,
    question        TEXT NOT NULL,
    answer_text     TEXT NOT NULL,
    form            TEXT,
    retrieved       INTEGER NOT NULL,
    mode            TEXT,
    p_retrieval     REAL,
    threshold       REAL,
    abstained       INTEGER NOT NULL DEFAULT 0,
    abstain_reason  TEXT,
    score           REAL,
    settings_json   TEXT NOT NULL DEFAULT '{}',
    answer_json     TEXT NOT NULL,
    created_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, ordinal);
CREATE TABLE IF NOT EXISTS segments (
    turn_id          INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL,
    text             TEXT NOT NULL,
    retrieval        TEXT,
    citation         INTEGER,
    relevance        REAL,
    relevance_token  TEXT,
    support          REAL,
    support_token    TEXT,
    utility          REAL,
    utility_token    TEXT,
    score            REAL,
    PRIMARY KEY (turn_id, idx)
);
CREATE TABLE IF NOT EXISTS sources (
    turn_id          INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    citation         INTEGER NOT NULL,
    chunk_id         TEXT NOT NULL,
    doc_title        TEXT,
    title            TEXT,
    path             TEXT,
    page_start       INTEGER,
    page_end         INTEGER,
    heading          TEXT,
    search_score     REAL,
    relevance        REAL,
    relevance_token  TEXT,
    PRIMARY KEY (turn_id, citation)
);
"""


@dataclass
class Turn:
    """One question and the answer the decoder gave, with the settings it ran under."""

    id: int
    question: str
    answer: Answer
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass
class ConversationSummary:
    """A row of the history list."""

    id: int
    title: str
    created_at: float
    updated_at: float
    turn_count: int


@dataclass
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    turns: list[Turn] = field(default_factory=list)

    def chat_history(self) -> list[tuple[str, str]]:
        """(question, answer text) pairs, what the decoder folds into the next instruction."""
        return [(turn.question, turn.answer.text) for turn in self.turns]


def title_from_question(question: str, limit: int = 60) -> str:
    """A one-line conversation title from its first question."""
    line = " ".join(question.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class HistoryStore:
    """Conversations in one SQLite file. Use from one thread (the app's event loop)."""

    def __init__(self, connection: sqlite3.Connection, path: Path | None) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path | str | None = None) -> "HistoryStore":
        """Open (creating it when missing) the history file; default `locations.history_db_path()`.

        `":memory:"` gives a throw-away store.
        """
        if path == ":memory:":
            connection = sqlite3.connect(":memory:")
            target = None
        else:
            target = Path(path) if path is not None else locations.history_db_path()
            target.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(target)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        store = cls(connection, target)
        store._migrate()
        return store

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the history file {self.path} was written by a newer selfrag-chat (schema {version}); "
                "upgrade selfrag-chat or move the file away"
            )
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # -- conversations ---------------------------------------------------------------------------------------

    def new_conversation(self, title: str = "New conversation", *, now: float | None = None) -> int:
        stamp = time.time() if now is None else now
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)", (title, stamp, stamp)
            )
        return int(cursor.lastrowid)

    def rename(self, conversation_id: int, title: str) -> None:
        with self._db:
            self._db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def delete(self, conversation_id: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def list_conversations(self) -> list[ConversationSummary]:
        """Most recently used first."""
        rows = self._db.execute(
            "SELECT c.id, c.title, c.created_at, c.updated_at, COUNT(t.id) AS turn_count "
            "FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id "
            "GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC"
        ).fetchall()
        return [
            ConversationSummary(row["id"], row["title"], row["created_at"], row["updated_at"], row["turn_count"])
            for row in rows
        ]

    def load(self, conversation_id: int) -> Conversation:
        row = self._db.execute(
            "SELECT id, title, created_at, updated_at FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no conversation with id {conversation_id} in {self.path or 'memory'}")
        conversation = Conversation(row["id"], row["title"], row["created_at"], row["updated_at"])
        for turn_row in self._db.execute(
            "SELECT id, question, settings_json, answer_json, created_at FROM turns "
            "WHERE conversation_id = ? ORDER BY ordinal",
            (conversation_id,),
        ):
            conversation.turns.append(
                Turn(
                    id=turn_row["id"],
                    question=turn_row["question"],
                    answer=answer_from_dict(json.loads(turn_row["answer_json"])),
                    settings=json.loads(turn_row["settings_json"] or "{}"),
                    created_at=turn_row["created_at"],
                )
            )
        return conversation

    # -- turns -----------------------------------------------------------------------------------------------

    def add_turn(
        self,
        conversation_id: int,
        answer: Answer,
        *,
        settings: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> int:
        """Append a finished turn; the first turn names an untitled conversation after its question."""
        stamp = time.time() if now is None else now
        decision = answer.decision
        with self._db:
            ordinal = self._db.execute(
                "SELECT COALESCE(MAX(ordinal), -1) + 1 FROM turns WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()[0]
            cursor = self._db.execute(
                "INSERT INTO turns (conversation_id, ordinal, question, answer_text, form, retrieved, mode, "
                "p_retrieval, threshold, abstained, abstain_reason, score, settings_json, answer_json, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    ordinal,
                    answer.question,
                    answer.text,
                    answer.form,
                    int(decision.retrieve),
                    decision.mode,
                    decision.p_retrieval,
                    decision.threshold,
                    int(answer.abstained),
                    answer.abstain_reason,
                    answer.score,
                    json.dumps(dict(settings or {}), default=str),
                    json.dumps(answer.to_dict(), default=str),
                    stamp,
                ),
            )
            turn_id = int(cursor.lastrowid)
            self._db.executemany(
                "INSERT INTO segments (turn_id, idx, text, retrieval, citation, relevance, relevance_token, "
                "support, support_token, utility, utility_token, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        turn_id,
                        segment.index,
                        segment.text,
                        segment.retrieval,
                        segment.citation,
                        segment.critique.relevance,
                        segment.critique.relevance_token,
                        segment.critique.support,
                        segment.critique.support_token,
                        segment.critique.utility,
                        segment.critique.utility_token,
                        segment.score,
                    )
                    for segment in answer.segments
                ],
            )
            rows = []
            for citation, passage in enumerate(answer.passages, start=1):
                verdict = answer.relevance_verdicts.get(passage.id)
                rows.append(
                    (
                        turn_id,
                        citation,
                        passage.id,
                        passage.doc_title,
                        passage.title,
                        passage.source,
                        passage.page_start,
                        passage.page_end,
                        passage.heading,
                        passage.score,
                        verdict.relevance if verdict else None,
                        verdict.relevance_token if verdict else None,
                    )
                )
            self._db.executemany(
                "INSERT INTO sources (turn_id, citation, chunk_id, doc_title, title, path, page_start, page_end, "
                "heading, search_score, relevance, relevance_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            if ordinal == 0:
                self._db.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = 'New conversation'",
                    (title_from_question(answer.question), conversation_id),
                )
            self._db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, conversation_id))
        return turn_id

    def iter_sources(self, conversation_id: int) -> Iterator[sqlite3.Row]:
        """Every source row of a conversation (for tools and tests reading the plain tables)."""
        yield from self._db.execute(
            "SELECT s.* FROM sources s JOIN turns t ON t.id = s.turn_id WHERE t.conversation_id = ? "
            "ORDER BY t.ordinal, s.citation",
            (conversation_id,),
        )


# ---------------------------------------------------------------------------------------------------------------
# Answer <-> JSON. `Answer.to_dict` writes; this reads back, tolerating fields added or dropped later.


def _build(cls: type, data: Mapping[str, Any], **nested: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {key: value for key, value in data.items() if key in names}
    values.update(nested)
    return cls(**values)


def _passage(data: Mapping[str, Any] | None) -> Passage | None:
    return None if data is None else _build(Passage, data, notes=tuple(data.get("notes") or ()))


def _critique(data: Mapping[str, Any] | None) -> Critique:
    return Critique() if data is None else _build(Critique, data, probabilities=dict(data.get("probabilities") or {}))


def _decision(data: Mapping[str, Any]) -> RetrievalDecision:
    return _build(RetrievalDecision, data)


def _candidate(data: Mapping[str, Any]) -> Candidate:
    return _build(
        Candidate,
        data,
        passage=_passage(data.get("passage")),
        token_ids=tuple(data.get("token_ids") or ()),
        critique=_critique(data.get("critique")),
    )


def _segment(data: Mapping[str, Any]) -> Segment:
    return _build(
        Segment,
        data,
        decision=_decision(data["decision"]),
        critique=_critique(data.get("critique")),
        passage=_passage(data.get("passage")),
        candidates=tuple(_candidate(c) for c in data.get("candidates") or ()),
    )


def answer_from_dict(data: Mapping[str, Any]) -> Answer:
    """The `Answer` that `Answer.to_dict()` (or its JSON) describes."""
    return _build(
        Answer,
        data,
        decision=_decision(data["decision"]),
        segments=tuple(_segment(s) for s in data.get("segments") or ()),
        passages=tuple(_passage(p) for p in data.get("passages") or ()),
        relevance_verdicts={k: _critique(v) for k, v in (data.get("relevance_verdicts") or {}).items()},
        timings=dict(data.get("timings") or {}),
    )
