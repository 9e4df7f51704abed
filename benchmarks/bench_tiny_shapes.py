"""Training cost of larger demo-model shapes, as a ratio to the shipped one (hidden 128, 3 layers).

The demo model (selfrag_tui/models/tiny-selfrag) is trained on one CPU thread by scripts/train_tiny_model.py. Before
trying a larger shape, this says how much longer each epoch would take: one training step (forward, backward,
AdamW) on a batch of the size the script uses (8 x 256 tokens, 2048 tokens), with the loss on the last 64 positions
of each row as the script takes it on the model's own tokens. Random weights: the cost does not depend on them.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tiny_shapes.py
"""

from __future__ import annotations

import statistics
import sys
import time

SHAPES = (  # hidden, layers, intermediate, heads
    (128, 3, 384, 4),  # shipped
    (192, 4, 576, 6),
    (256, 6, 768, 8),
)
VOCAB = 3016
STEPS = 5


def step_seconds(hidden: int, layers: int, intermediate: int, heads: int) -> tuple[float, int]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=4096, tie_word_embeddings=True, attn_implementation="sdpa")
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, VOCAB - 16, (8, 256))
    times = []
    for step in range(STEPS + 1):
        started = time.perf_counter()
        hidden_states = model.model(input_ids=ids).last_hidden_state
        logits = model.lm_head(hidden_states[:, -65:-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB).float(), ids[:, -64:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up the allocator
            times.append(time.perf_counter() - started)
    return statistics.median(times), sum(p.numel() for p in model.parameters())


def main() -> int:
    import torch

    torch.set_num_threads(1)
    base = None
    print(f"{'shape':<28} {'parameters':>11} {'ms / step':>10} {'x shipped':>10}")
    for shape in SHAPES:
        seconds, parameters = step_seconds(*shape)
        base = base or seconds
        hidden, layers, _, heads = shape
        print(f"{f'hidden {hidden}, {layers} layers, {heads} heads':<28} {parameters / 1e6:>10.2f}M "
              f"{seconds * 1000:>10.0f} {seconds / base:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
