"""The model's Hugging Face tokenizer, loaded from a local folder or the local cache and never downloaded here.

The server engine builds token-id prompts with it, and the llama.cpp engine can use it instead of a GGUF's own
tokenizer so prompts tokenise exactly as in the transformers engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selfrag_tui.engines.base import EngineError


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of `name_or_path` (a folder, or a hub name already in the local cache)."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a core dependency
        raise EngineError(f"Loading the tokenizer needs transformers: {exc}") from exc

    folder = Path(name_or_path).expanduser()
    source = str(folder) if folder.is_dir() else name_or_path
    local_only = folder.is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, HFValidationError ...
        raise EngineError(
            f"The model's tokenizer is needed locally, but '{name_or_path}' could not be loaded ({exc}). Set "
            f"model.tokenizer (--tokenizer) to a folder with the Self-RAG tokenizer files (tokenizer.model, "
            f"tokenizer_config.json, special_tokens_map.json from selfrag/selfrag_llama2_7b), or download the model "
            f"with `selfrag-chat model download gguf-q4_k_m` (it comes with them)."
        ) from exc
