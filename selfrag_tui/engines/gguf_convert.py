"""GGUF files of the Self-RAG model: convert a Hugging Face Llama checkpoint, check and fix its reflection tokens.

Why this module exists instead of running llama.cpp's `convert_hf_to_gguf.py`: that script is not installed with
llama-cpp-python (it lives in its source archive, next to ~90 model modules), so a `pip install` user could not
convert. Self-RAG is a Llama-2, and a Llama checkpoint needs only a small part of that script, written here on
top of the `gguf` package (llama.cpp's own GGUF library, MIT) in the same way: the same metadata keys, the same
SentencePiece vocabulary with the 16 added tokens, the same tensor names, and the same row order of the query and
key projections (llama.cpp rotates interleaved pairs, Hugging Face rotates halves). The tests check that its
output runs token-for-token like the file llama.cpp's own converter writes.

One deliberate difference: the Self-RAG tokens are written USER_DEFINED, not CONTROL. llama.cpp renders control
tokens as empty text wherever special tokens are not asked for (its server does that), so `[Retrieval]` would
vanish from an answer. User-defined tokens still parse as single tokens and always render as their text.

4-bit and 5-bit K-quants (q4_k_m, q5_k_m) are made by llama.cpp's own quantiser (through llama-cpp-python) from an
f16 file written first; f32, f16 and q8_0 are written directly. Tensors are read and written one at a time, so
converting the 7B model needs about one tensor of memory, not the whole model.

numpy, gguf, torch, safetensors and llama_cpp are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from selfrag_tui.engines.base import EngineError

# The reflection vocabulary (selfrag_tui.reflection.ADDED_TOKENS), repeated so this module needs only the engines.
SELF_RAG_TOKENS: tuple[str, ...] = (
    "[No Retrieval]", "[Retrieval]", "[Continue to Use Evidence]", "[Irrelevant]", "[Relevant]", "<paragraph>",
    "</paragraph>", "[Utility:1]", "[Utility:2]", "[Utility:3]", "[Utility:4]", "[Utility:5]", "[Fully supported]",
    "[Partially supported]", "[No support / Contradictory]",
)
OUTTYPES: tuple[str, ...] = ("f32", "f16", "q8_0", "q5_k_m", "q4_k_m")
# Bytes per weight of each output type (q8_0: 34 bytes per block of 32; K-quants: llama.cpp's mixed averages).
BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32, "q5_k_m": 5.69 / 8, "q4_k_m": 4.85 / 8}

Progress = Callable[[str, int, int], None]
"""(what, done, total) — tensors written, or the quantiser's start and end."""


class ConversionError(EngineError):
    """A checkpoint could not be converted, or a GGUF file could not be read or fixed; the message says why."""


def _import_gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise ConversionError(
            "GGUF files need the `gguf` package, installed with the llama.cpp extra: "
            "pip install 'selfrag-chat[llamacpp]'"
        ) from None
    return gguf


# -- reading the checkpoint ---------------------------------------------------------------------------------


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _tensor_files(model_dir: Path) -> list[Path]:
    safetensors = sorted(model_dir.glob("*.safetensors"))
    if safetensors:
        return safetensors
    bins = sorted(p for p in model_dir.glob("*.bin") if p.name != "training_args.bin")
    if bins:
        return bins
    raise ConversionError(f"{model_dir} holds no weights (*.safetensors or *.bin); download the model again")


def _iter_tensors(files: list[Path]) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array) of each tensor, one at a time (memory-mapped where the format allows)."""
    import torch

    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as reader:
                for name in reader.keys():
                    yield name, reader.get_tensor(name).to(torch.float32).numpy()
        else:
            state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
            for name, tensor in state.items():
                yield name, tensor.to(torch.float32).numpy()
            del state


def _tensor_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as reader:
                for name in reader.keys():
                    shapes[name] = tuple(reader.get_slice(name).get_shape())
        else:
            state = torch.load(str(path), map_location="meta", weights_only=True)
            shapes.update({name: tuple(t.shape) for name, t in state.items()})
    return shapes


_LAYER_NAMES = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def gguf_tensor_name(hf_name: str) -> str | None:
    """llama.cpp's name of a Hugging Face Llama tensor (None for buffers that are not weights)."""
    name = hf_name.removeprefix("model.")
    if name == "embed_tokens.weight":
        return "token_embd.weight"
    if name == "norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    if name.startswith("layers."):
        _, index, rest = name.split(".", 2)
        if rest in _LAYER_NAMES:
            return f"blk.{int(index)}.{_LAYER_NAMES[rest]}"
        if rest.endswith("rotary_emb.inv_freq"):
            return None
    raise ConversionError(f"unexpected tensor {hf_name}: only Llama checkpoints (LlamaForCausalLM) are converted")


def _permute(weights: Any, heads: int) -> Any:
    """Hugging Face's rotary layout (halves) -> llama.cpp's (interleaved pairs), per head."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


# -- the vocabulary -----------------------------------------------------------------------------------------


def _vocabulary(model_dir: Path, vocab_size: int, gguf: Any) -> tuple[list[bytes], list[float], list[int]]:
    """The SentencePiece vocabulary with the added tokens, as llama.cpp's converter builds it, except that the
    Self-RAG tokens are USER_DEFINED."""
    from sentencepiece import SentencePieceProcessor

    types = gguf.TokenType
    path = model_dir / "tokenizer.model"
    if not path.is_file():
        raise ConversionError(
            f"{model_dir} has no tokenizer.model; the Self-RAG checkpoint ships a SentencePiece tokenizer.model"
        )
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(path))
    tokens = [f"[PAD{i}]".encode() for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    kinds = [int(types.UNUSED)] * vocab_size
    for token_id in range(min(sp.vocab_size(), vocab_size)):
        kind = types.NORMAL
        if sp.IsUnknown(token_id):
            kind = types.UNKNOWN
        elif sp.IsControl(token_id):
            kind = types.CONTROL
        elif sp.IsUnused(token_id):
            kind = types.UNUSED
        elif sp.IsByte(token_id):
            kind = types.BYTE
        tokens[token_id] = sp.IdToPiece(token_id).encode("utf-8")
        scores[token_id] = sp.GetScore(token_id)
        kinds[token_id] = int(kind)

    added: dict[int, tuple[str, bool]] = {}
    if (model_dir / "added_tokens.json").is_file():
        for text, token_id in _load_json(model_dir / "added_tokens.json").items():
            added[int(token_id)] = (text, False)
    if (model_dir / "tokenizer_config.json").is_file():
        decoder = _load_json(model_dir / "tokenizer_config.json").get("added_tokens_decoder", {}) or {}
        for token_id, data in decoder.items():
            added[int(token_id)] = (str(data["content"]), bool(data.get("special")))
    for token_id, (text, special) in sorted(added.items()):
        if token_id >= vocab_size:
            continue
        if text in SELF_RAG_TOKENS:
            kind = types.USER_DEFINED
        elif special or (text.startswith("<") and text.endswith(">")):
            kind = types.CONTROL
        else:
            kind = types.USER_DEFINED
            text = text.replace("\u2581", " ")
        tokens[token_id] = text.encode("utf-8")
        scores[token_id] = -1000.0
        kinds[token_id] = int(kind)
    return tokens, scores, kinds


# -- writing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hparams:
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    context: int
    rms_eps: float
    rope_theta: float
    vocab_size: int
    tied: bool


def _hparams(config: dict[str, Any], model_dir: Path) -> _Hparams:
    architectures = config.get("architectures") or []
    if config.get("model_type") != "llama" and "LlamaForCausalLM" not in architectures:
        raise ConversionError(
            f"{model_dir} holds a {config.get('model_type') or 'unknown'} model; only Llama checkpoints "
            "(such as selfrag/selfrag_llama2_7b) are converted"
        )
    try:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        rope = config.get("rope_parameters") or {}
        return _Hparams(
            layers=int(config["num_hidden_layers"]),
            hidden=hidden,
            ffn=int(config["intermediate_size"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            context=int(config.get("max_position_embeddings") or 4096),
            rms_eps=float(config.get("rms_norm_eps") or 1e-5),
            rope_theta=float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0),
            vocab_size=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConversionError(f"{model_dir / 'config.json'} lacks or garbles {exc}; download the model again") from None


def estimated_size(model_dir: Path, outtype: str) -> int:
    """Bytes of the GGUF file `convert` would write (the weights' count times the type's bytes per weight)."""
    import math

    weights = sum(math.prod(shape) for shape in _tensor_shapes(_tensor_files(Path(model_dir))).values())
    return int(weights * BYTES_PER_WEIGHT[outtype])


def _write_direct(model_dir: Path, outfile: Path, outtype: str, on_progress: Progress | None) -> None:
    """f32, f16 or q8_0, tensor by tensor."""
    import numpy as np

    gguf = _import_gguf()
    from gguf.quants import quant_shape_to_byte_shape, quantize

    config = _load_json(model_dir / "config.json")
    hp = _hparams(config, model_dir)
    files = _tensor_files(model_dir)
    shapes = _tensor_shapes(files)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]

    writer = gguf.GGUFWriter(str(outfile), "llama")
    writer.add_type("model")
    writer.add_name(model_dir.name)
    writer.add_block_count(hp.layers)
    writer.add_context_length(hp.context)
    writer.add_embedding_length(hp.hidden)
    writer.add_feed_forward_length(hp.ffn)
    writer.add_head_count(hp.heads)
    writer.add_head_count_kv(hp.kv_heads)
    writer.add_rope_freq_base(hp.rope_theta)
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_key_length(hp.head_dim)
    writer.add_value_length(hp.head_dim)
    writer.add_file_type(int(file_type))
    writer.add_vocab_size(hp.vocab_size)
    writer.add_rope_dimension_count(hp.head_dim)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, scores, kinds = _vocabulary(model_dir, hp.vocab_size, gguf)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(kinds)
    special = {**_load_json(model_dir / "generation_config.json"), **config} \
        if (model_dir / "generation_config.json").is_file() else config
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id)):
        value = special.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            add(int(value))
    tokenizer_config = _load_json(model_dir / "tokenizer_config.json") \
        if (model_dir / "tokenizer_config.json").is_file() else {}
    writer.add_add_bos_token(bool(tokenizer_config.get("add_bos_token", True)))
    writer.add_add_eos_token(bool(tokenizer_config.get("add_eos_token", False)))

    def target_type(shape: tuple[int, ...]) -> Any:
        if len(shape) < 2 or outtype == "f32":
            return gguf.GGMLQuantizationType.F32
        if outtype == "f16":
            return gguf.GGMLQuantizationType.F16
        if shape[-1] % 32 == 0:
            return gguf.GGMLQuantizationType.Q8_0
        return gguf.GGMLQuantizationType.F16

    planned: list[tuple[str, str, Any]] = []  # (hf name, gguf name, type)
    for hf_name, shape in shapes.items():
        name = gguf_tensor_name(hf_name)
        if name is None or (name == "output.weight" and hp.tied):
            continue
        qtype = target_type(shape)
        planned.append((hf_name, name, qtype))
        if qtype == gguf.GGMLQuantizationType.Q8_0:
            writer.add_tensor_info(name, quant_shape_to_byte_shape(shape, qtype), np.dtype(np.uint8),
                                   int(np.prod(quant_shape_to_byte_shape(shape, qtype))), raw_dtype=qtype)
        else:
            itemsize = 4 if qtype == gguf.GGMLQuantizationType.F32 else 2
            writer.add_tensor_info(name, shape, np.dtype(np.float32 if itemsize == 4 else np.float16),
                                   int(np.prod(shape)) * itemsize)
    if not any(name == "token_embd.weight" for _, name, _ in planned):
        raise ConversionError(f"{model_dir} has no token embedding (model.embed_tokens.weight)")

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    order = {hf_name: (name, qtype) for hf_name, name, qtype in planned}
    pending: dict[str, Any] = {}
    written = 0
    tensors = _iter_tensors(files)
    for hf_name, name, qtype in planned:
        # Tensors are written in the order of the header; a file whose order differs is read ahead as needed.
        while hf_name not in pending:
            got, data = next(tensors)
            if got in order:
                pending[got] = data
        data = pending.pop(hf_name)
        if name.endswith("attn_q.weight"):
            data = _permute(data, hp.heads)
        elif name.endswith("attn_k.weight"):
            data = _permute(data, hp.kv_heads)
        if qtype == gguf.GGMLQuantizationType.Q8_0:
            data = quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)
        elif qtype == gguf.GGMLQuantizationType.F16:
            data = data.astype(np.float16)
        else:
            data = data.astype(np.float32)
        writer.write_tensor_data(np.ascontiguousarray(data))
        written += 1
        if on_progress is not None:
            on_progress("tensors", written, len(planned))
    writer.close()


def _quantize(source: Path, target: Path, outtype: str) -> None:
    """llama.cpp's own quantiser (llama_model_quantize), as `llama-quantize` runs it."""
    import ctypes

    try:
        import llama_cpp
    except ImportError:
        raise ConversionError(
            f"{outtype} files are made by llama.cpp's quantiser, which comes with llama-cpp-python: "
            "pip install 'selfrag-chat[llamacpp]' (or convert to q8_0, which needs only the gguf package)"
        ) from None
    ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "q5_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M}[outtype]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = max(1, (os.cpu_count() or 1))
    from llama_cpp import _logger

    _logger.set_verbose(False)  # llama.cpp's per-tensor lines would garble a terminal UI; errors still show
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0 or not target.is_file():
        raise ConversionError(f"llama.cpp's quantiser failed on {source} (status {status})")


def convert(
    model_dir: str | Path,
    outfile: str | Path,
    *,
    outtype: str = "q8_0",
    on_progress: Progress | None = None,
    free_disk: Callable[[Path], int] | None = None,
) -> Path:
    """Write `model_dir` (a Hugging Face Llama folder) as a GGUF file of `outtype`; return its path.

    The file appears only when complete (written under a `.partial` name first). The free space is checked
    first: a 4-bit file is made from an f16 one, which needs room for both for a while.
    """
    from selfrag_tui.engines import memory

    model_dir = Path(model_dir).expanduser()
    outfile = Path(outfile).expanduser()
    if outtype not in OUTTYPES:
        raise ConversionError(f"unknown GGUF type '{outtype}': use one of {', '.join(OUTTYPES)}")
    if not (model_dir / "config.json").is_file():
        raise ConversionError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    _import_gguf()
    outfile.parent.mkdir(parents=True, exist_ok=True)
    needed = estimated_size(model_dir, outtype)
    if outtype in ("q4_k_m", "q5_k_m"):
        needed += estimated_size(model_dir, "f16")
    free = (free_disk or memory.free_disk)(outfile.parent)
    if needed > free:
        raise ConversionError(
            f"not enough free disk space in {outfile.parent} to write a {outtype} file: it needs about "
            f"{memory.gib(needed)}, {memory.gib(free)} is free; free some space or choose another --outfile"
        )
    partial = outfile.with_name(outfile.name + ".partial")
    try:
        if outtype in ("q4_k_m", "q5_k_m"):
            f16 = outfile.with_name(outfile.name + ".f16.partial")
            try:
                _write_direct(model_dir, f16, "f16", on_progress)
                if on_progress is not None:
                    on_progress("quantising", 0, 1)
                _quantize(f16, partial, outtype)
                if on_progress is not None:
                    on_progress("quantising", 1, 1)
            finally:
                f16.unlink(missing_ok=True)
        else:
            _write_direct(model_dir, partial, outtype, on_progress)
        partial.replace(outfile)
    finally:
        partial.unlink(missing_ok=True)
    return outfile


# -- the reflection tokens of a GGUF file ---------------------------------------------------------------------


def reflection_token_types(path: str | Path) -> dict[str, str | None]:
    """Each Self-RAG token -> its GGUF token type name (NORMAL, CONTROL, USER_DEFINED, ...), None when absent."""
    gguf = _import_gguf()
    try:
        reader = gguf.GGUFReader(str(path), "r")
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{path} cannot be read as a GGUF file: {exc}") from None
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    types = reader.fields.get("tokenizer.ggml.token_type")
    found: dict[str, str | None] = {token: None for token in SELF_RAG_TOKENS}
    if tokens is None:
        return found
    for index, part in enumerate(tokens.data):
        text = bytes(tokens.parts[part]).decode("utf-8", errors="replace")
        if text in found:
            kind = int(types.parts[types.data[index]][0]) if types is not None else int(gguf.TokenType.NORMAL)
            found[text] = gguf.TokenType(kind).name
    return found


def retype_reflection_tokens(path: str | Path) -> int:
    """Re-type the Self-RAG tokens of a GGUF file USER_DEFINED in place; return how many were changed.

    Only a few bytes of the header change (the token-type array); the weights are untouched.
    """
    gguf = _import_gguf()
    try:
        reader = gguf.GGUFReader(str(path), "r+")
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{path} cannot be opened for writing as a GGUF file: {exc}") from None
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    types = reader.fields.get("tokenizer.ggml.token_type")
    if tokens is None or types is None:
        raise ConversionError(f"{path} has no token list; it is not a complete GGUF model file")
    changed = 0
    for index, part in enumerate(tokens.data):
        text = bytes(tokens.parts[part]).decode("utf-8", errors="replace")
        if text in SELF_RAG_TOKENS:
            type_part = types.parts[types.data[index]]
            if int(type_part[0]) != int(gguf.TokenType.USER_DEFINED):
                type_part[0] = int(gguf.TokenType.USER_DEFINED)
                changed += 1
    reader.data.flush()
    del reader
    return changed


@dataclass(frozen=True)
class GgufTokenCheck:
    """How llama.cpp itself reads one Self-RAG token of a GGUF file."""

    token: str
    ids: tuple[int, ...]
    """What llama.cpp's tokenizer makes of the token's text (special tokens parsed): one id when usable."""
    rendered: str
    """The text llama.cpp returns for that id when special tokens are not asked for (its server's way)."""
    control: bool
    """The id is typed as a control token (hidden from text output)."""

    @property
    def usable(self) -> bool:
        return len(self.ids) == 1 and self.rendered == self.token and not self.control


def check_gguf_tokens(path: str | Path) -> list[GgufTokenCheck]:
    """Ask llama.cpp how it tokenises and renders each Self-RAG token: the vocabulary only (no weights, no
    context), with llama.cpp's log silenced rather than the process's stdout (which a terminal UI is using)."""
    try:
        import llama_cpp
        from llama_cpp import _logger
        from llama_cpp._internals import LlamaModel
    except ImportError:
        raise ConversionError(
            "checking a GGUF file needs llama-cpp-python: pip install 'selfrag-chat[llamacpp]'"
        ) from None
    _logger.set_verbose(False)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        model = LlamaModel(path_model=str(path), params=params, verbose=True)
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(
            f"llama.cpp cannot read {path}: {exc}. The file may be truncated (download it again) or not a GGUF model"
        ) from None
    try:
        checks = []
        for token in SELF_RAG_TOKENS:
            ids = tuple(int(t) for t in model.tokenize(token.encode("utf-8"), False, True))
            rendered = ""
            control = False
            if len(ids) == 1:
                rendered = model.detokenize(list(ids), special=False).decode("utf-8", errors="replace")
                control = bool(model.token_get_attr(ids[0]) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)
            checks.append(GgufTokenCheck(token, ids, rendered, control))
        return checks
    finally:
        model.close()
