"""Peak memory and speed of the packaged GGUF converter (`selfrag-chat model convert`), which reads and writes one
tensor at a time: its peak anonymous memory should stay far below the size of the checkpoint (target: under half
of it). The checkpoint's pages mapped from disk count in the resident size too, but they are page cache the kernel
drops under memory pressure, so they are printed separately.

The real 7B checkpoint is 13.5 GB; this builds a Llama checkpoint of the same layout and tokenizer (the tiny
model's) with 8 layers of the 7B's width (hidden 4096, 32 heads, FFN 11008: about 1.7 billion parameters,
3.4 GB in float16) in a temporary folder, converts it to q8_0 and to q4_k_m in fresh processes, and prints
the peak resident memory of each as a ratio of the checkpoint size, and the throughput in GB of checkpoint per
second.

Run: .venv/bin/python benchmarks/bench_gguf_convert.py [--layers N] [--outtypes q8_0,q4_k_m]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5

CHILD = r"""
import json, resource, sys, threading, time
from selfrag_tui.engines.gguf_convert import convert

peak_anon = 0
def sample():  # anonymous memory (what must fit in RAM); mapped file pages are page cache the kernel can drop
    global peak_anon
    while True:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    peak_anon = max(peak_anon, int(line.split()[1]) * 1024)
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
path = convert(sys.argv[1], sys.argv[2], outtype=sys.argv[3])
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "peak_anon": peak_anon, "size": path.stat().st_size}))
"""


def build_checkpoint(folder: Path, layers: int) -> int:
    import torch
    from safetensors.torch import save_file

    tiny = ROOT / "selfrag_tui" / "models" / "tiny-selfrag"
    folder.mkdir(parents=True)
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                 "generation_config.json"):
        shutil.copy(tiny / name, folder / name)
    config = json.loads((tiny / "config.json").read_text())
    config.update(hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers, num_attention_heads=32,
                  num_key_value_heads=32, head_dim=128, tie_word_embeddings=False, dtype="float16")
    (folder / "config.json").write_text(json.dumps(config))
    generator = torch.Generator().manual_seed(0)

    def weight(*shape: int) -> "torch.Tensor":
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.float16)

    vocab, hidden, ffn = config["vocab_size"], 4096, 11008
    total = 0
    shards: list[dict] = [{}, {}]  # two shards, like the 7B checkpoint's 10 GB + 3.5 GB
    for index in range(layers):
        prefix = f"model.layers.{index}."
        shard = shards[0 if index < layers * 3 // 4 else 1]
        shard.update({prefix + name: weight(*shape) for name, shape in (
            ("self_attn.q_proj.weight", (hidden, hidden)), ("self_attn.k_proj.weight", (hidden, hidden)),
            ("self_attn.v_proj.weight", (hidden, hidden)), ("self_attn.o_proj.weight", (hidden, hidden)),
            ("mlp.gate_proj.weight", (ffn, hidden)), ("mlp.up_proj.weight", (ffn, hidden)),
            ("mlp.down_proj.weight", (hidden, ffn)))})
        shard[prefix + "input_layernorm.weight"] = torch.ones(hidden, dtype=torch.float16)
        shard[prefix + "post_attention_layernorm.weight"] = torch.ones(hidden, dtype=torch.float16)
    shards[0].update({"model.embed_tokens.weight": weight(vocab, hidden),
                      "model.norm.weight": torch.ones(hidden, dtype=torch.float16)})
    shards[1]["lm_head.weight"] = weight(vocab, hidden)
    for index, shard in enumerate(shards):
        path = folder / f"model-{index + 1:05d}-of-00002.safetensors"
        save_file(shard, str(path))
        total += path.stat().st_size
        shard.clear()
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--outtypes", default="q8_0,q4_k_m", help="comma-separated (q4_k_m takes minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "checkpoint"
        size = build_checkpoint(checkpoint, args.layers)
        print(f"checkpoint: {args.layers} layers of Llama-2-7B's width, {size / 1e9:.2f} GB float16")
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        worst = 0.0
        for outtype in args.outtypes.split(","):
            out = Path(tmp) / f"out-{outtype}.gguf"
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, str(checkpoint), str(out), outtype],
                                  capture_output=True, text=True, env=env, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            ratio = result["peak_anon"] / size
            worst = max(worst, ratio)
            print(f"{outtype:7s} {result['size'] / 1e9:5.2f} GB written in {result['seconds']:6.1f} s "
                  f"({size / 1e9 / result['seconds']:.3f} GB/s of checkpoint); peak anonymous memory "
                  f"{result['peak_anon'] / 1e9:.2f} GB = {ratio:.2f} x the checkpoint; peak resident incl. mapped "
                  f"file pages {result['peak_bytes'] / 1e9:.2f} GB (wall {time.perf_counter() - started:.1f} s)")
            out.unlink()
        print(f"worst peak-memory ratio {worst:.2f} (target < {TARGET_RATIO})")
        return 0 if worst < TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
