"""Write a randomly initialised Llama-2-7B-shaped Self-RAG GGUF and quantise it, to measure CPU speed without the
real weights (benchmarks/bench_cpu_7b.py).

Shape: hidden 4096, 32 layers, 32 heads, intermediate 11008, context 4096, untied output, and the Self-RAG
vocabulary size of 32016 (Llama-2's 32000 + the 16 added tokens). Speed depends on these shapes and the tensor
types, not on the weight values, so the figures hold for the real model of the same quantisation.

The vocabulary is the bundled tiny Self-RAG model's SentencePiece vocabulary (3000 pieces) padded with unused
pieces to 32000, followed by its 16 added tokens (typed control, as llama.cpp's converter writes them): prompts
tokenise to about the lengths real text gets, and `[Retrieval]` etc. are single ids as in the real model.

The f16 file (~13.5 GB) is written one tensor at a time (one 262 MB tensor in memory at most), then quantised
with llama.cpp's own quantiser (`llama_model_quantize`) to the requested types; the f16 file is deleted unless
--keep-f16 is given. Run the heavy steps on a quiet machine:

    nice -n 10 .venv/bin/python scripts/make_random_7b_gguf.py --outdir /work/models-cache --types q8_0 q4_k_m
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

HIDDEN = 4096
LAYERS = 32
HEADS = 32
INTERMEDIATE = 11008
CONTEXT = 4096
BASE_VOCAB = 32000
# llama.cpp file types (enum llama_ftype) of the quantised outputs.
FTYPES = {"q8_0": 7, "q4_k_m": 15, "q4_0": 2, "q5_k_m": 17}


def gguf_module():
    """The gguf-py that ships with the installed llama-cpp-python's converter (scripts/convert_tiny_to_gguf.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import convert_tiny_to_gguf

    script = convert_tiny_to_gguf.extract_converter(convert_tiny_to_gguf.find_sdist())
    sys.path.insert(0, str(script.parent / "gguf-py"))
    import gguf

    return gguf


def tiny_vocabulary(gguf, tiny_gguf: Path) -> tuple[list[str], list[float], list[int]]:
    """The tiny model's pieces, padded to 32000 with unused pieces, then its added tokens."""
    reader = gguf.GGUFReader(str(tiny_gguf))
    tokens = list(reader.fields["tokenizer.ggml.tokens"].contents())
    scores = [float(s) for s in reader.fields["tokenizer.ggml.scores"].contents()]
    types = [int(t) for t in reader.fields["tokenizer.ggml.token_type"].contents()]
    added = len(tokens) - 3000
    base_tokens, base_scores, base_types = tokens[:3000], scores[:3000], types[:3000]
    for i in range(3000, BASE_VOCAB):
        base_tokens.append(f"<unused{i}>")
        base_scores.append(-1e9)
        base_types.append(int(gguf.TokenType.UNUSED))
    return (
        base_tokens + tokens[3000:],
        base_scores + scores[3000:],
        base_types + types[3000:],
    ) if added == 16 else _refuse(tiny_gguf, len(tokens))


def _refuse(path: Path, size: int):
    raise SystemExit(f"{path}: expected the tiny model's 3000 + 16 tokens, found {size}; rebuild it.")


def write_f16(out: Path, tiny_gguf: Path, seed: int = 0) -> Path:
    gguf = gguf_module()
    tokens, scores, types = tiny_vocabulary(gguf, tiny_gguf)
    vocab = len(tokens)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("random Llama-2-7B-shaped Self-RAG")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_vocab_size(vocab)
    writer.add_file_type(1)  # LLAMA_FTYPE_MOSTLY_F16
    writer.add_quantization_version(2)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(vocab - 1)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    shapes: list[tuple[str, tuple[int, ...], type]] = [("token_embd.weight", (vocab, HIDDEN), np.float16)]
    for layer in range(LAYERS):
        b = f"blk.{layer}"
        shapes += [
            (f"{b}.attn_norm.weight", (HIDDEN,), np.float32),
            (f"{b}.attn_q.weight", (HIDDEN, HIDDEN), np.float16),
            (f"{b}.attn_k.weight", (HIDDEN, HIDDEN), np.float16),
            (f"{b}.attn_v.weight", (HIDDEN, HIDDEN), np.float16),
            (f"{b}.attn_output.weight", (HIDDEN, HIDDEN), np.float16),
            (f"{b}.ffn_norm.weight", (HIDDEN,), np.float32),
            (f"{b}.ffn_gate.weight", (INTERMEDIATE, HIDDEN), np.float16),
            (f"{b}.ffn_up.weight", (INTERMEDIATE, HIDDEN), np.float16),
            (f"{b}.ffn_down.weight", (HIDDEN, INTERMEDIATE), np.float16),
        ]
    shapes += [("output_norm.weight", (HIDDEN,), np.float32), ("output.weight", (vocab, HIDDEN), np.float16)]
    for name, shape, dtype in shapes:
        writer.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file(out)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    # One pool of N(0, 0.02) values, sliced at random offsets: random enough for timing, and cheap.
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 26, dtype=np.float32) * 0.02).astype(np.float16)
    for name, shape, dtype in shapes:
        size = int(np.prod(shape))
        if dtype == np.float32:
            tensor = np.ones(shape, dtype=np.float32)
        else:
            tensor = np.empty(size, dtype=np.float16)
            filled = 0
            while filled < size:
                start = int(rng.integers(0, pool.size // 2))
                take = min(size - filled, pool.size - start)
                tensor[filled : filled + take] = pool[start : start + take]
                filled += take
            tensor = tensor.reshape(shape)
        writer.write_tensor_data(tensor)
        del tensor
    writer.close()
    return out


def quantise(source: Path, target: Path, kind: str, threads: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.nthread = threads
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    if code != 0 or not target.is_file():
        raise SystemExit(f"llama_model_quantize failed ({code}) writing {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", type=Path, default=Path("/work/models-cache"))
    parser.add_argument("--types", nargs="+", default=["q8_0", "q4_k_m"], choices=sorted(FTYPES))
    parser.add_argument("--tiny-gguf", type=Path, default=None,
                        help="the tiny model's GGUF (default: convert the bundled model into --outdir)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep-f16", action="store_true")
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    tiny = args.tiny_gguf
    if tiny is None:
        sys.path.insert(0, str(ROOT / "scripts"))
        sys.path.insert(0, str(ROOT))
        import convert_tiny_to_gguf

        from selfrag_tui.application import locations

        tiny = convert_tiny_to_gguf.convert(locations.demo_model_path(), args.outdir / "tiny-selfrag-f32.gguf")
    f16 = args.outdir / "random-selfrag-7b-f16.gguf"
    if not f16.is_file():
        started = time.perf_counter()
        partial = f16.with_suffix(".partial")
        write_f16(partial, tiny)
        partial.rename(f16)
        print(f"wrote {f16} ({f16.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s", flush=True)
    for kind in args.types:
        target = args.outdir / f"random-selfrag-7b-{kind}.gguf"
        if target.is_file():
            print(f"{target} exists")
            continue
        started = time.perf_counter()
        quantise(f16, target, kind, args.threads)
        print(f"wrote {target} ({target.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s",
              flush=True)
    if not args.keep_f16:
        f16.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
