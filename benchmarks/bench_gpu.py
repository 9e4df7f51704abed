"""GPU throughput of the engines on a model with Llama-2-7B's shape and the Self-RAG vocabulary (32016).

Run on a CUDA machine (not in CI): .venv/bin/python benchmarks/bench_gpu.py [--new-tokens 128] [--engines transformers,vllm]

The model is randomly initialised (no weights to download): speed depends on the shape, not the values. Random
weights never choose EOS on purpose, and the engines are told there is none, so every generation runs to its
token budget and lengths are comparable. It measures, through our engines:

1. single-stream decode tokens/s against the memory-bandwidth bound (every decode step reads all weights:
   7B in fp16 is ~13.5 GB, so ~249 tok/s at an H100 SXM's 3.35 TB/s);
2. one short-form Self-RAG turn with K=5 passages (the retrieval decision step, then the K passage prompts in
   one batched call) against one plain generation of the same length (target <= 1.5x).

On a machine without CUDA it says so and exits without measuring.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LLAMA2_7B = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    vocab_size=32016,  # Llama-2's 32000 + the 16 Self-RAG tokens
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)
SELF_RAG_IDS = list(range(32000, 32015))  # the 15 reflection tokens in the real model's layout
RETRIEVE_IDS = [32000, 32001, 32002]
# Peak memory bandwidth (GB/s) of common cards, matched against the device name (the longest matching key wins,
# so "H100 NVL" beats "H100" and "L40S" beats "L4").
BANDWIDTH_GBS = {
    "B200": 8000, "GH200": 4000, "H200": 4800, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "H800": 3350,
    "H20": 4000, "A100-SXM4-80GB": 2039, "A100 80GB PCIe": 1935, "A100-PCIE-40GB": 1555, "A100": 1555,
    "A800": 2039, "L40S": 864, "L40": 864, "L4": 300, "A10G": 600, "A10": 600, "A40": 696, "A30": 933,
    "RTX 6000 Ada": 960, "RTX A6000": 768, "RTX 5090": 1792, "RTX 4090": 1008, "RTX 4080": 717, "RTX 3090": 936,
    "V100": 900, "T4": 320,
}
TARGET_TURN_RATIO = 1.5


def bandwidth_for(name: str, override: float | None) -> tuple[float | None, str]:
    """(peak GB/s, where the figure comes from) for a device name; None when the card is not in the table."""
    if override:
        return override, "--bandwidth-gbs"
    matches = [key for key in BANDWIDTH_GBS if key.lower() in name.lower()]
    if not matches:
        return None, "unknown card"
    key = max(matches, key=len)
    return float(BANDWIDTH_GBS[key]), f"table entry '{key}'"


def nvidia_smi_gpus() -> list[str]:
    """GPU names nvidia-smi lists (empty without the tool or a driver)."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def build_model(torch, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**LLAMA2_7B)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(dtype)
    model.eval()
    return model


def tokenizer_for_bench():
    """A Llama SentencePiece tokenizer for the engine's bookkeeping; prompts are token ids, so any will do."""
    from transformers import AutoTokenizer

    from selfrag_tui.application import locations

    return AutoTokenizer.from_pretrained(str(locations.demo_model_path()))


def prompts(k: int, base_len: int, passage_len: int) -> tuple[list[int], list[list[int]]]:
    rng = random.Random(0)
    base = [1] + [rng.randrange(3, 32000) for _ in range(base_len - 1)]
    passages = [base + [32001, 32005] + [rng.randrange(3, 32000) for _ in range(passage_len)] + [32006]
                for _ in range(k)]
    return base, passages


def timed(torch, fn, repeats: int) -> float:
    """Median wall time of `fn()` (GPU work included)."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(engine, torch, *, new_tokens: int, k: int, base_len: int, passage_len: int, repeats: int) -> dict:
    base, passages = prompts(k, base_len, passage_len)
    engine.eos_token_id = -1  # random weights: no EOS, every generation runs its full budget

    def plain():
        (g,) = engine.generate([base], max_new_tokens=new_tokens, score_ids=SELF_RAG_IDS)
        assert len(g.token_ids) == new_tokens, len(g.token_ids)

    def prefill_only():
        engine.generate([base], max_new_tokens=1, score_ids=SELF_RAG_IDS)

    def short_form_turn():
        engine.next_token_logprobs([base], [32001, 32000])
        gens = engine.generate(passages, max_new_tokens=new_tokens, stop_token_ids=RETRIEVE_IDS,
                               score_ids=SELF_RAG_IDS)
        assert all(len(g.token_ids) >= 1 for g in gens)

    plain()  # warm-up: kernels, allocator
    t_plain = timed(torch, plain, repeats)
    t_one = timed(torch, prefill_only, repeats)
    t_turn = timed(torch, short_form_turn, repeats)
    decode_tps = (new_tokens - 1) / max(t_plain - t_one, 1e-9)
    return {"plain_s": t_plain, "prefill_s": t_one, "turn_s": t_turn, "decode_tok_s": decode_tps}


def report(name: str, result: dict, *, bound_tps: float | None, new_tokens: int, k: int) -> None:
    """Each figure, and where the bandwidth is known, as a ratio to its memory-bandwidth bound (1.00 = the card's
    peak: every decode step reads all weights once; prefill and the key/value cache are left out of the bound)."""
    print(f"\n== engine: {name}")

    def against(seconds: float, steps: int) -> str:
        if not bound_tps:
            return ""
        bound_s = steps / bound_tps
        return f"  (bound {bound_s:.3f} s; bound / measured = {bound_s / seconds:.2f})"

    print(f"plain generation of {new_tokens} tokens: {result['plain_s']:.3f} s" + against(result["plain_s"], new_tokens))
    line = f"single-stream decode: {result['decode_tok_s']:.1f} tok/s"
    if bound_tps:
        line += f"  (bound {bound_tps:.0f} tok/s; measured / bound = {result['decode_tok_s'] / bound_tps:.2f})"
    print(line)
    ratio = result["turn_s"] / result["plain_s"]
    verdict = "meets" if ratio <= TARGET_TURN_RATIO else "misses"
    # The turn's K passage prompts decode as one batch: one weight read per step, plus the retrieval step.
    print(f"short-form turn, K={k} passages: {result['turn_s']:.3f} s" + against(result["turn_s"], new_tokens + 1))
    print(f"  = {ratio:.2f}x one plain generation (target <= {TARGET_TURN_RATIO}x: {verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--base-len", type=int, default=64, help="tokens of the instruction prompt")
    parser.add_argument("--passage-len", type=int, default=200, help="tokens per passage (~150 words)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--bandwidth-gbs", type=float, help="peak memory bandwidth when the card is not known")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("bench_gpu: torch is not installed; nothing measured.")
        return 0
    if not torch.cuda.is_available():
        smi = nvidia_smi_gpus()
        why = (f"nvidia-smi sees {'; '.join(smi)}, but this torch ({torch.__version__}) cannot use it: install a CUDA "
               "build of torch" if smi else "no NVIDIA GPU or driver here, and torch.cuda.is_available() is False")
        print(f"bench_gpu: SKIPPED - no CUDA GPU usable ({why}). This benchmark measures 7B-shaped decoding on an "
              "NVIDIA GPU; run it there: python benchmarks/bench_gpu.py")
        return 0

    from selfrag_tui.engines.transformers_engine import TransformersEngine

    dtype = getattr(torch, args.dtype)
    name = torch.cuda.get_device_name(0)
    total = torch.cuda.get_device_properties(0).total_memory
    print(f"device: {name} ({total / 2**30:.0f} GiB), torch {torch.__version__}, dtype {args.dtype}")
    model = build_model(torch, dtype)
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bandwidth, source = bandwidth_for(name, args.bandwidth_gbs)
    bound = bandwidth * 1e9 / weight_bytes if bandwidth else None
    print(f"model: Llama-2-7B shape, vocab 32016, {params / 1e9:.2f} B parameters, {weight_bytes / 1e9:.2f} GB "
          f"of weights read per decode step")
    if bound:
        print(f"memory-bandwidth bound: {bandwidth:.0f} GB/s ({source}) / {weight_bytes / 1e9:.2f} GB = "
              f"{bound:.0f} decode steps/s")
    else:
        print(f"memory-bandwidth bound: unknown for '{name}' (not in the table); pass --bandwidth-gbs to get ratios")
    tokenizer = tokenizer_for_bench()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    settings = dict(new_tokens=args.new_tokens, k=args.k, base_len=args.base_len, passage_len=args.passage_len,
                    repeats=args.repeats)

    if "transformers" in engines:
        engine = TransformersEngine(model, tokenizer, model_name="random-llama2-7b-shape", device="cuda",
                                    dtype=args.dtype, max_context=4096)
        report("transformers", measure(engine, torch, **settings), bound_tps=bound, new_tokens=args.new_tokens,
               k=args.k)
        del engine  # the vLLM run below needs the GPU memory back

    if "vllm" in engines:
        import importlib.util

        vllm_error = None
        if importlib.util.find_spec("vllm") is not None:
            try:
                import vllm  # noqa: F401 - a broken install (e.g. a CUDA torch mismatch) fails here, said below
            except Exception as exc:  # noqa: BLE001
                vllm_error = f"{type(exc).__name__}: {exc}"
        if vllm_error is not None:
            print(f"\n== engine: vllm - installed but not importable ({vllm_error}); reinstall it with "
                  "pip install 'selfrag-chat[vllm]' in a fresh venv, then rerun.")
        elif importlib.util.find_spec("vllm") is None:
            print("\n== engine: vllm - not installed. To measure it: pip install 'selfrag-chat[vllm]' (a CUDA torch "
                  "and ~5 GB), then rerun; it saves the random model (~13.5 GB) to a temporary folder and loads it "
                  "with VllmEngine (prefix caching on, K prompts in one batch).")
        else:
            from selfrag_tui.engines.vllm_engine import VllmEngine

            with tempfile.TemporaryDirectory(prefix="bench-gpu-") as folder:
                model.save_pretrained(folder)
                tokenizer.save_pretrained(folder)
                del model
                gc.collect()
                torch.cuda.empty_cache()
                engine = VllmEngine.load(folder, dtype=args.dtype, gpu_memory_utilization=0.85, max_model_len=4096)
                info = engine.info()
                label = f"vllm (logprobs: {info.logprob_source})"
                if "logprob_fallback" in info.extra:
                    label += f" - {info.extra['logprob_fallback']}"
                report(label, measure(engine, torch, **settings), bound_tps=bound, new_tokens=args.new_tokens,
                       k=args.k)
                engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
