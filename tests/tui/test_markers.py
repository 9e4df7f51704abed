"""Markers read the same without colour, and document or model text is never interpreted as markup or escapes."""

from __future__ import annotations

import dataclasses

from answer_factory import ALPACAS, chit_chat_answer, retrieved_answer

from selfrag_tui.tui.markers import badge, fit_path, segment_text, source_line
from selfrag_tui.application.verdicts import clean_text


def test_clean_text_removes_escape_sequences_and_control_characters_only():
    raw = "a\x1b[31mred\x1b[0m \x1b]0;title\x07b\x9bc\x00d [bold]x[/bold]\ttab\r\nend"

    assert clean_text(raw) == "ared bcd [bold]x[/bold]    tab\nend"


def test_markers_in_words_compact_and_plain():
    segment = retrieved_answer().segments[0]

    assert segment_text(segment, "full").plain.endswith("[1] ✓ Relevant · ● Fully supported · ★ Utility 5/5")
    assert segment_text(segment, "compact").plain.endswith("[1] ✓rel ●full ★U5")
    assert segment_text(segment, "plain").plain == segment.text


def test_a_segment_without_passage_shows_no_relevance_or_support_marker():
    chit_chat = chit_chat_answer()
    critique = dataclasses.replace(chit_chat.segments[0].critique, support=1.0, support_token="[Fully supported]")
    segment = dataclasses.replace(chit_chat.segments[0], critique=critique)

    assert segment_text(segment, "full").plain.endswith("★ Utility 5/5")
    assert "supported" not in segment_text(segment, "full").plain


def test_markup_and_self_rag_tokens_in_text_stay_literal():
    segment = dataclasses.replace(retrieved_answer().segments[0], text="Use [bold]cold[/bold] water [Relevant].")
    passage = dataclasses.replace(ALPACAS, doc_title="Fleece [red]care[/red]\x1b[2J")

    assert segment_text(segment, "plain").plain == "Use [bold]cold[/bold] water [Relevant]."
    assert segment_text(segment, "plain").spans == []
    assert source_line(1, passage, None).plain.startswith("[1] Fleece [red]care[/red]\n")


def test_badge_says_retrieved_or_not_with_probability_threshold_and_mode():
    assert badge(retrieved_answer().decision).plain == " ⟳ RETRIEVED  p([Retrieval])=0.93 > threshold 0.20 (adaptive)"
    assert badge(chit_chat_answer().decision).plain == " ∅ NO RETRIEVAL  p([Retrieval])=0.03 ≤ threshold 0.20 (adaptive)"


def test_a_decision_to_continue_with_the_current_passage_is_not_called_no_retrieval():
    import math

    from selfrag_tui.application.verdicts import decision_summary
    from selfrag_tui.selfrag.types import RetrievalDecision

    decision = RetrievalDecision(retrieve=False, mode="adaptive", threshold=0.2, p_retrieval=0.5,
                                 continue_evidence=True, logprob_continue=math.log(0.8))
    assert decision_summary(decision) == "continued with the current passage (p([Continue to Use Evidence])=0.80)"


def test_the_sentence_that_matched_is_underlined_in_the_passage():
    from selfrag_tui.tui.markers import MATCH_STYLE, with_match

    text = "Alpacas are smaller than llamas and were bred for their fibre. They are shorn\n  once a year. Done."
    sentence = "They are shorn once a year."  # as the rerank gives it: spaces collapsed
    passage = dataclasses.replace(ALPACAS, text=text, match=sentence)
    shown = with_match(passage.text, passage.match)
    (span,) = [s for s in shown.spans if s.style == MATCH_STYLE]
    assert shown.plain[span.start:span.end] == "They are shorn\n  once a year."
    assert with_match(ALPACAS.text, None).spans == []


def test_a_long_source_location_wraps_under_its_entry_not_at_the_left_edge():
    from rich.console import Console

    from selfrag_tui.tui.markers import hanging

    passage = dataclasses.replace(ALPACAS, heading="Wired Devices and Reserved Addresses of the Whole Home Network")
    console = Console(width=40, record=True, color_system=None)
    console.print(hanging(source_line(4, passage, None)))
    lines = console.export_text().rstrip("\n").split("\n")

    assert lines[0].startswith("[4] ")
    assert len(lines) >= 4, lines  # the location wraps at this width
    assert all(line.startswith("    ") and line.strip() for line in lines[1:]), lines
    assert " ".join(line.strip() for line in lines[1:]).startswith(" ".join(source_line(4, passage, None)
                                                                            .plain.split("\n")[1].split()))


def test_a_path_cut_to_fit_a_column_keeps_its_file_name(monkeypatch, tmp_path):
    """The library's File column is 30 cells: a long path gives up its folders first, then the middle of the
    file name, never the extension; a path that fits is shown whole."""
    monkeypatch.chdir(tmp_path)
    papers = tmp_path / "sample_docs"

    assert fit_path(str(papers / "camelids.md"), 30) == "sample_docs/camelids.md"
    assert fit_path(str(papers / "andean_textile_fibres.pdf"), 30) == "sam…/andean_textile_fibres.pdf"
    assert fit_path("/srv/x/andean_textile_fibres.pdf", 27) == "…/andean_textile_fibres.pdf"
    cut = fit_path("/srv/filings/quarterly_report_of_patriot_transportation_2023.pdf", 30)
    assert len(cut) == 30 and cut.startswith("quarterly_report") and cut.endswith("_2023.pdf") and "…" in cut
    for width in (4, 12, 30, 60):
        assert len(fit_path("/srv/filings/quarterly_report_of_patriot_transportation_2023.pdf", width)) <= width


def test_a_source_shows_where_search_put_it_and_the_raw_score_only_when_that_is_unknown():
    """`search #1`: the passage's place in the search results. A passage without a rank (a chat saved before ranks
    were kept) shows its score as before."""
    ranked = source_line(1, ALPACAS, None).plain
    unranked = source_line(2, dataclasses.replace(ALPACAS, rank=None), None).plain
    assert "search #1 · not judged" in ranked and "0.812" not in ranked
    assert "score 0.812 · not judged" in unranked
