"""Held-out figures of the tiny Self-RAG demo model, measured the way a user meets it: through the app.

Each question is asked with `Session.ask` under the demo settings (the transformers engine, the sample_docs store
with its hybrid search, the decoder's defaults), so the figures are what `selfrag-chat --demo ask` shows, not
teacher-forced scores. The questions are the `held_out` ones of scripts/sample_qa.json: one paraphrase per fact
and a few unanswerable questions, none of them ever trained on.

    .venv/bin/python scripts/tiny_eval.py                       # the bundled model, the full table
    .venv/bin/python scripts/tiny_eval.py --model DIR           # another build of it
    .venv/bin/python scripts/tiny_eval.py --trained             # the trained questions instead (for comparison)
    .venv/bin/python scripts/tiny_eval.py --dev                 # the development wordings (to choose between runs)
    .venv/bin/python scripts/tiny_eval.py --lower               # typed in lower case, as in a chat
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_data  # noqa: E402  (a sibling script, not a package)

RELEVANT = 0.5
"""A passage counts as judged relevant above this relevance (the decoder's abstention floor)."""


@dataclass
class Result:
    """One question asked through the app, and what came back."""

    question: str
    kind: str
    """"paraphrase" (answerable), "off_topic" or "near_miss" (sample_docs cannot answer it)."""
    expected: str | None
    retrieved: bool
    right_passages: list[float] = field(default_factory=list)
    """Relevance the model gave each retrieved passage that holds the answer."""
    wrong_passages: list[float] = field(default_factory=list)
    """Relevance the model gave each retrieved passage that does not."""
    text: str = ""
    abstained: bool = False
    wrong_relevant_supported: int = 0
    """Segments citing a wrong passage marked [Relevant] and [Fully supported]: a confident wrong answer."""
    answered_from_wrong: bool = False
    """Not abstained, and a segment cites a passage that does not hold the answer."""

    @property
    def answerable(self) -> bool:
        return self.kind == "paraphrase"

    @property
    def right_answer(self) -> bool:
        return self.answerable and not self.abstained and self.text == self.expected

    @property
    def wrong_answer_shown(self) -> bool:
        """Not abstained and not the right answer, whichever passage it cites: also an answer from the right
        passage that is not the fact asked for (the router's admin address for its firmware version)."""
        return not self.abstained and not self.right_answer


def questions(trained: bool = False, dev: bool = False) -> list[dict]:
    """The held-out questions (or, with `trained`, the trained questions and paraphrases, for comparison; with
    `dev`, the development questions of scripts/sample_qa_dev.json, for choosing between training runs)."""
    qa = tiny_data.load_qa()
    if dev:
        return tiny_data.dev_questions(qa)
    if not trained:
        return tiny_data.held_out_questions(qa)
    out = []
    for item_index, item in enumerate(qa["factual"]):
        for question in [item["question"], *item.get("paraphrases", [])]:
            out.append({"question": question, "item": item_index, "kind": "paraphrase", "answer": item["answer"],
                        "evidence": item["evidence"]})
    for item in qa.get("unanswerable", []):
        if not item.get("held_out"):
            out.append({"question": item["question"], "item": None, "kind": item["kind"], "answer": None,
                        "evidence": None})
    return out


def open_demo_session(model_dir: Path, data_dir: Path):
    """A demo Session (sample_docs ingested into a store under `data_dir`) running the model in `model_dir`.
    SELFRAG_DATA_DIR and SELFRAG_CONFIG must point into `data_dir` (see `evaluate`)."""
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    session = Session(Settings(), demo=True)
    if Path(session.settings.model.model).resolve() != Path(model_dir).resolve():
        session.settings = session.settings.with_updates({"model": {"model": str(model_dir)}}, source="--model")
    session.ingest_sample_docs()
    session.load_engine()
    return session


def ask(session, entry: dict) -> Result:
    answer = session.ask(entry["question"])
    evidence = entry.get("evidence")

    def holds_answer(passage) -> bool:
        return evidence is not None and tiny_data.normalise(evidence).lower() in \
            tiny_data.normalise(passage.text).lower()

    result = Result(entry["question"], entry["kind"], entry.get("answer"), answer.decision.retrieve,
                    text=answer.text.strip(), abstained=answer.abstained)
    for passage in answer.passages:
        verdict = answer.relevance_verdicts.get(passage.id)
        if verdict is None or verdict.relevance is None:
            continue
        (result.right_passages if holds_answer(passage) else result.wrong_passages).append(verdict.relevance)
    for segment in answer.segments:
        if segment.passage is None or holds_answer(segment.passage):
            continue
        critique = segment.critique
        if critique.relevance_token == "[Relevant]" and critique.support_token == "[Fully supported]":
            result.wrong_relevant_supported += 1
        if not answer.abstained:
            result.answered_from_wrong = True
    return result


def evaluate(model_dir: Path, entries: list[dict] | None = None, *, trained: bool = False) -> list[Result]:
    """Ask each question of `entries` (default: the held-out ones) in a fresh demo session with its own store."""
    entries = questions(trained) if entries is None else entries
    saved = {name: os.environ.get(name) for name in ("SELFRAG_DATA_DIR", "SELFRAG_CONFIG")}
    with tempfile.TemporaryDirectory(prefix="tiny-eval-") as workdir:
        config = Path(workdir) / "config.toml"
        config.write_text("", encoding="utf-8")
        os.environ.update({"SELFRAG_DATA_DIR": str(Path(workdir) / "data"), "SELFRAG_CONFIG": str(config)})
        try:
            session = open_demo_session(model_dir, Path(workdir))
            try:
                return [ask(session, entry) for entry in entries]
            finally:
                session.close()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _ratio(hits: int, total: int) -> str:
    return f"{hits}/{total}"


def figures(results: list[Result]) -> dict[str, str]:
    """The table's rows: each a count out of the questions (or passages) it is about."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    with_right = [r for r in answerable if r.right_passages]
    wrong = [v for r in results for v in r.wrong_passages]
    not_right = [r for r in results if not r.right_answer]
    return {
        "questions (answerable / unanswerable)": f"{len(answerable)} / {len(unanswerable)}",
        "retrieval decision right (retrieve)": _ratio(sum(r.retrieved for r in results), len(results)),
        "right passage among the retrieved": _ratio(len(with_right), len(answerable)),
        "right passage judged relevant (of those retrieved)":
            _ratio(sum(max(r.right_passages) > RELEVANT for r in with_right), len(with_right)),
        "wrong passages judged irrelevant": _ratio(sum(v <= RELEVANT for v in wrong), len(wrong)),
        "right answer given (answerable)": _ratio(sum(r.right_answer for r in answerable), len(answerable)),
        "abstained when not giving the right answer": _ratio(sum(r.abstained for r in not_right), len(not_right)),
        "abstained on unanswerable questions": _ratio(sum(r.abstained for r in unanswerable), len(unanswerable)),
        "answered from a wrong passage without abstaining": _ratio(
            sum(r.answered_from_wrong for r in results), len(results)),
        "wrong passage marked Relevant + Fully supported (segments)": str(
            sum(r.wrong_relevant_supported for r in results)),
        "wrong answer shown without abstaining": _ratio(sum(r.wrong_answer_shown for r in results), len(results)),
    }


def table(figures_: dict[str, str], title: str = "held-out check") -> str:
    width = max(len(name) for name in figures_)
    lines = [f"| {title.ljust(width)} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in figures_.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from selfrag_tui.application.locations import demo_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=demo_model_path(), help="model folder (default: bundled)")
    parser.add_argument("--trained", action="store_true", help="the trained questions instead of the held-out")
    parser.add_argument("--dev", action="store_true",
                        help="the development questions (scripts/sample_qa_dev.json) instead of the held-out")
    parser.add_argument("--lower", action="store_true",
                        help="ask each question in lower case, as people often type in a chat")
    parser.add_argument("--verbose", action="store_true", help="one line per question")
    parser.add_argument("--record", action="store_true",
                        help="write the held-out figures into the model's training_manifest.json (held_out_figures), "
                             "as training does; for a figure added after the weights were trained")
    args = parser.parse_args(argv)
    if args.record and (args.trained or args.dev or args.lower):
        parser.error("--record writes the held-out figures; it does not go with --trained, --dev or --lower")
    entries = questions(args.trained, args.dev)
    if args.lower:
        entries = [dict(entry, question=entry["question"].lower()) for entry in entries]
    results = evaluate(args.model, entries)
    if args.verbose:
        for r in results:
            mark = "RIGHT" if r.right_answer else ("WRONG" if r.wrong_answer_shown else "abstain")
            print(f"{mark:7s} {r.kind:10s} {r.question!r} -> {r.text[:70]!r} "
                  f"right={[round(v, 2) for v in r.right_passages]} wrong={[round(v, 2) for v in r.wrong_passages]}")
    measured = figures(results)
    print(table(measured, "dev check" if args.dev else "trained check" if args.trained else "held-out check"))
    if args.record:
        path = args.model / "training_manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["held_out_figures"] = measured
        path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
