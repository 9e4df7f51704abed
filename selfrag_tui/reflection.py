"""The Self-RAG reflection vocabulary (SELFRAG_SPEC section 1), looked up in the loaded model's tokenizer.

A leaf module: it imports nothing of the project, so the decoder and the engines can both use it.

Every decision of the decoder is made from these ids and their logprobs, never by searching decoded text: the
official code's text checks silently break when special tokens are skipped in decoding. A tokenizer that lacks
any of the tokens would make the decoder score garbage, so it is rejected with an error that says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from typing import Protocol, Sequence

    class Engine(Protocol):  # the two methods of the engine interface that the lookup needs
        def token_id(self, token: str) -> int | None: ...
        def encode(self, text: str, *, add_bos: bool = True) -> Sequence[int]: ...

NO_RETRIEVAL = "[No Retrieval]"
RETRIEVAL = "[Retrieval]"
CONTINUE_EVIDENCE = "[Continue to Use Evidence]"
IRRELEVANT = "[Irrelevant]"
RELEVANT = "[Relevant]"
PARAGRAPH_OPEN = "<paragraph>"
PARAGRAPH_CLOSE = "</paragraph>"
UTILITY_TOKENS: tuple[str, ...] = tuple(f"[Utility:{k}]" for k in range(1, 6))
FULLY_SUPPORTED = "[Fully supported]"
PARTIALLY_SUPPORTED = "[Partially supported]"
NO_SUPPORT = "[No support / Contradictory]"
PAD = "<pad>"

RETRIEVE_GROUP: tuple[str, ...] = (NO_RETRIEVAL, RETRIEVAL, CONTINUE_EVIDENCE)
RELEVANCE_GROUP: tuple[str, ...] = (IRRELEVANT, RELEVANT)
SUPPORT_GROUP: tuple[str, ...] = (FULLY_SUPPORTED, PARTIALLY_SUPPORTED, NO_SUPPORT)
UTILITY_GROUP: tuple[str, ...] = UTILITY_TOKENS

# The 16 added tokens in the order of the real model's ids 32000..32015.
ADDED_TOKENS: tuple[str, ...] = (
    NO_RETRIEVAL,
    RETRIEVAL,
    CONTINUE_EVIDENCE,
    IRRELEVANT,
    RELEVANT,
    PARAGRAPH_OPEN,
    PARAGRAPH_CLOSE,
    *UTILITY_TOKENS,
    FULLY_SUPPORTED,
    PARTIALLY_SUPPORTED,
    NO_SUPPORT,
    PAD,
)
# The 15 reflection tokens (everything but <pad>): the ids whose logprobs engines report at every position.
REFLECTION_TOKENS: tuple[str, ...] = ADDED_TOKENS[:-1]

TokenGroup = Literal["retrieve", "relevance", "support", "utility", "paragraph"]

_GROUP_OF_TOKEN: dict[str, TokenGroup] = {
    **{token: "retrieve" for token in RETRIEVE_GROUP},
    **{token: "relevance" for token in RELEVANCE_GROUP},
    **{token: "support" for token in SUPPORT_GROUP},
    **{token: "utility" for token in UTILITY_GROUP},
    PARAGRAPH_OPEN: "paragraph",
    PARAGRAPH_CLOSE: "paragraph",
}


class MissingReflectionTokens(ValueError):
    """The loaded tokenizer is not a Self-RAG tokenizer: some reflection tokens are missing or not atomic.

    Engines re-raise it as their own `EngineError`; the message already says what to do."""


@dataclass(frozen=True)
class ReflectionVocab:
    """Ids of the 15 reflection tokens and `<pad>` in one model's tokenizer."""

    ids: dict[str, int]
    """Token string -> id, for all 16 added tokens."""
    tokens_by_id: dict[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens_by_id", {token_id: token for token, token_id in self.ids.items()})

    @classmethod
    def from_engine(cls, engine: "Engine") -> "ReflectionVocab":
        """Look every added token up through `engine.token_id`; reject a tokenizer that lacks or splits any.

        Raises MissingReflectionTokens naming the model, so a wrong model folder, a plain Llama or a GGUF
        converted without the added tokens fails at load time instead of scoring garbage.
        """
        model = getattr(engine, "model_name", "") or getattr(engine, "name", "the model")
        ids: dict[str, int] = {}
        missing: list[str] = []
        for token in ADDED_TOKENS:
            token_id = engine.token_id(token)
            if token_id is None:
                missing.append(token)
            else:
                ids[token] = int(token_id)
        if missing:
            raise MissingReflectionTokens(
                f"The model '{model}' is not a Self-RAG model: its tokenizer lacks "
                f"{len(missing)} of the 16 Self-RAG tokens ({', '.join(missing)}). Check that the model setting "
                f"points at a Self-RAG checkpoint such as selfrag/selfrag_llama2_7b (a plain Llama, a wrong model "
                f"folder, or a GGUF converted without the added tokens cannot be used)."
            )
        by_id: dict[int, list[str]] = {}
        for token, token_id in ids.items():
            by_id.setdefault(token_id, []).append(token)
        shared = [tokens for tokens in by_id.values() if len(tokens) > 1]
        if shared:
            raise MissingReflectionTokens(
                f"The model '{model}' has a broken Self-RAG vocabulary: the tokens {shared[0]} share one id. "
                f"Re-download or re-convert the model."
            )
        # Prompts are built by encoding text that contains the tokens: they must parse as single tokens. (Some
        # SentencePiece tokenizers add a stray prefix-space piece at the start; that is harmless.)
        encoded = list(engine.encode("".join(REFLECTION_TOKENS), add_bos=False))
        expected = [ids[token] for token in REFLECTION_TOKENS]
        known = set(expected)
        if [token_id for token_id in encoded if token_id in known] != expected or len(encoded) > len(expected) + 1:
            raise MissingReflectionTokens(
                f"The tokenizer of the model '{model}' does not parse the Self-RAG tokens as single tokens "
                f"(encoding them gave {len(encoded)} ids instead of {len(expected)}). Re-download or re-convert "
                f"the model with its added tokens marked special."
            )
        return cls(ids=ids)

    # -- single tokens -------------------------------------------------------------------------------------------
    @property
    def no_retrieval(self) -> int:
        return self.ids[NO_RETRIEVAL]

    @property
    def retrieval(self) -> int:
        return self.ids[RETRIEVAL]

    @property
    def continue_evidence(self) -> int:
        return self.ids[CONTINUE_EVIDENCE]

    @property
    def relevant(self) -> int:
        return self.ids[RELEVANT]

    @property
    def irrelevant(self) -> int:
        return self.ids[IRRELEVANT]

    @property
    def paragraph_open(self) -> int:
        return self.ids[PARAGRAPH_OPEN]

    @property
    def paragraph_close(self) -> int:
        return self.ids[PARAGRAPH_CLOSE]

    @property
    def pad(self) -> int:
        return self.ids[PAD]

    # -- groups, as ids in a fixed order ------------------------------------------------------------------------
    def group(self, tokens: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(self.ids[token] for token in tokens)

    @property
    def retrieve_ids(self) -> tuple[int, ...]:
        return self.group(RETRIEVE_GROUP)

    @property
    def relevance_ids(self) -> tuple[int, ...]:
        return self.group(RELEVANCE_GROUP)

    @property
    def support_ids(self) -> tuple[int, ...]:
        return self.group(SUPPORT_GROUP)

    @property
    def utility_ids(self) -> tuple[int, ...]:
        return self.group(UTILITY_GROUP)

    @property
    def score_ids(self) -> tuple[int, ...]:
        """The 15 reflection ids whose logprobs the engine reports at every generated position."""
        return self.group(REFLECTION_TOKENS)

    @property
    def special_ids(self) -> frozenset[int]:
        """All 16 added ids: stripped from plain answer text."""
        return frozenset(self.ids.values())

    def token(self, token_id: int) -> str | None:
        """The token string of an added id, or None for an ordinary token."""
        return self.tokens_by_id.get(token_id)

    def group_of(self, token_id: int) -> TokenGroup | None:
        token = self.token(token_id)
        return _GROUP_OF_TOKEN.get(token) if token is not None else None
