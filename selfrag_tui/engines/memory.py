"""How much memory a model needs, and how much this machine has free, measured now.

One place for the sums, used by the transformers engine before it loads (a CPU process that runs out of memory
is killed by the kernel, not told) and by the model setup commands when they say what fits on this machine.

A decoder-only model needs its weights plus the attention (key/value) cache for the context it reserves:
2 (keys and values) x layers x KV heads x head size x context tokens x bytes per element. For Llama-2-7B
(32 layers, 32 heads of 128) that is 0.5 MiB per token in 16-bit: 2 GiB at 4,096 tokens.

Only the standard library is imported at module level; torch is used when the caller hands it in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 2**30

# Weights need this much more memory than their size (buffers, activations, allocator slack).
WEIGHT_HEADROOM = 1.15
# Fixed working memory on top: the runtime's compute buffers, the CUDA context, the tokenizer.
RUNTIME_OVERHEAD = int(0.5 * GiB)


@dataclass(frozen=True)
class ModelShape:
    """The sizes that decide the key/value cache of a decoder-only transformer."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelShape | None":
        """The shape from a Hugging Face config.json (None when it does not say)."""
        try:
            layers = int(config["num_hidden_layers"])
            hidden = int(config["hidden_size"])
            heads = int(config["num_attention_heads"])
        except (KeyError, TypeError, ValueError):
            return None
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        return cls(layers, hidden, heads, kv_heads, head_dim)


# selfrag/selfrag_llama2_7b is a Llama-2-7B: 32 layers, hidden 4096, 32 heads (no grouped-query attention).
LLAMA2_7B = ModelShape(layers=32, hidden=4096, heads=32, kv_heads=32, head_dim=128)


def kv_cache_bytes(shape: ModelShape, context_tokens: int, bytes_per_element: int = 2) -> int:
    """Bytes of the key/value cache for `context_tokens` tokens of one sequence."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * int(context_tokens) * int(bytes_per_element)


def needed_bytes(weight_bytes: int, shape: ModelShape | None, context_tokens: int, kv_bytes_per_element: int = 2) -> int:
    """Weights (with headroom) + the key/value cache at `context_tokens` + a fixed runtime overhead."""
    kv = kv_cache_bytes(shape, context_tokens, kv_bytes_per_element) if shape is not None else 0
    return int(weight_bytes * WEIGHT_HEADROOM) + kv + RUNTIME_OVERHEAD


def available_ram() -> int | None:
    """Bytes of RAM the kernel can give a new process now (MemAvailable), or None when it cannot be told."""
    try:
        import psutil  # installed with accelerate; also works on macOS and Windows

        return int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no permission
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def total_ram() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    total: int
    free: int


def gpu_memory(torch: Any | None = None) -> list[GpuMemory]:
    """Free and total memory of each CUDA device torch sees (empty without torch, CUDA or a GPU)."""
    if torch is None:
        try:
            import torch
        except ImportError:
            return []
    try:
        if not torch.cuda.is_available():
            return []
        gpus = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            gpus.append(GpuMemory(index, str(torch.cuda.get_device_name(index)), int(total), int(free)))
        return gpus
    except (RuntimeError, AssertionError):  # a driver problem: treat as no GPU
        return []


def free_disk(path: Path) -> int:
    """Free bytes on the file system that holds `path` (or its nearest existing parent)."""
    import shutil

    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return int(shutil.disk_usage(path).free)


def gib(n: int | float | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GiB"
