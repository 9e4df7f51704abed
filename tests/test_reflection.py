"""The reflection vocabulary is looked up in the tokenizer, and a tokenizer without it is rejected clearly."""

from __future__ import annotations

import pytest

from scripted_engine import ScriptedEngine
from selfrag_tui.selfrag.decoder import SelfRagDecoder
from selfrag_tui.reflection import ADDED_TOKENS, MissingReflectionTokens, ReflectionVocab


def test_ids_follow_the_tokenizer_and_groups_are_complete():
    vocab = ReflectionVocab.from_engine(ScriptedEngine())
    assert [vocab.ids[t] for t in ADDED_TOKENS] == list(range(32000, 32016))
    assert vocab.ids["[No support / Contradictory]"] == 32014
    assert vocab.retrieve_ids == (32000, 32001, 32002)
    assert vocab.relevance_ids == (32003, 32004)
    assert vocab.utility_ids == (32007, 32008, 32009, 32010, 32011)
    assert vocab.support_ids == (32012, 32013, 32014)
    assert len(vocab.score_ids) == 15 and vocab.pad not in vocab.score_ids
    assert vocab.group_of(32010) == "utility" and vocab.group_of(5) is None


def test_tokenizer_missing_a_reflection_token_is_rejected_naming_the_model():
    engine = ScriptedEngine(missing_tokens=("[Utility:3]",), model_name="meta-llama/Llama-2-7b-hf")
    with pytest.raises(MissingReflectionTokens) as info:
        ReflectionVocab.from_engine(engine)
    message = str(info.value)
    assert "meta-llama/Llama-2-7b-hf" in message and "[Utility:3]" in message and "selfrag" in message


def test_decoder_refuses_an_engine_without_the_vocabulary():
    with pytest.raises(MissingReflectionTokens, match="No support / Contradictory"):
        SelfRagDecoder(ScriptedEngine(missing_tokens=("[No support / Contradictory]",)), lambda q, k: [])


class SplittingEngine(ScriptedEngine):
    """A tokenizer that knows the token strings but does not parse them as single tokens in text."""

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        return super().encode(text.replace("[", "[ "), add_bos=add_bos)


def test_tokenizer_that_splits_reflection_tokens_is_rejected():
    with pytest.raises(MissingReflectionTokens, match="single tokens"):
        ReflectionVocab.from_engine(SplittingEngine())


class PrefixSpaceEngine(ScriptedEngine):
    """A SentencePiece-like tokenizer that puts one prefix-space piece before text starting with a special token."""

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        ids = super().encode(text, add_bos=add_bos)
        return ids[:1] + [self._id("▁")] + ids[1:] if add_bos else [self._id("▁")] + ids


def test_a_stray_prefix_space_piece_is_tolerated():
    vocab = ReflectionVocab.from_engine(PrefixSpaceEngine())
    assert vocab.retrieval == 32001
