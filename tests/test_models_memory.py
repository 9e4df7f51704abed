"""Memory-safe loads of the transformers engine, on a folder shaped like the real 7B checkpoint.

The 7B weights cannot be fetched here. A folder with the real model's config.json (32 layers, hidden 4096, 32
heads, float16) and a *sparse* 13.5 GB weight file stands in: the engine's check reads the size and the config,
never the bytes, so the refusal is computed exactly as for the real download. The free memory is given to the
check (a 16 GB laptop, a 24 GB one) because the figures must not depend on the machine running the tests.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading

import pytest

from selfrag_tui.application.locations import demo_model_path
from selfrag_tui.engines import memory, transformers_engine
from selfrag_tui.engines.base import EngineError
from selfrag_tui.engines.transformers_engine import TransformersEngine

GiB = 2**30
LLAMA2_7B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5, "torch_dtype": "float16", "vocab_size": 32016, "bos_token_id": 1, "eos_token_id": 2,
}


@pytest.fixture
def seven_b(tmp_path):
    return _make_seven_b(tmp_path / "selfrag_llama2_7b")


def _make_seven_b(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(LLAMA2_7B_CONFIG), encoding="utf-8")
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        shutil.copy(demo_model_path() / name, folder / name)
    for index, size in enumerate((9_976_576_152, 3_500_296_424)):  # two shards, 13.48 GB together
        with open(folder / f"model-0000{index + 1}-of-00002.safetensors", "wb") as shard:
            shard.truncate(size)  # sparse: the size is real, no disk is used
    return folder


def _laptop(monkeypatch, free_gib: float) -> None:
    monkeypatch.setattr(transformers_engine, "_available_memory", lambda torch, device: int(free_gib * GiB))


def test_the_7b_in_float32_on_a_16_gb_laptop_is_refused_and_points_at_a_gguf(seven_b, monkeypatch):
    _laptop(monkeypatch, 16)
    with pytest.raises(EngineError) as error:
        TransformersEngine.load(str(seven_b), device="cpu", dtype="auto")
    message = str(error.value)
    # float32 weights 25.1 GiB (+15 %) + a float32 key/value cache of 4 GiB at 4096 tokens + 0.5 GiB.
    assert "needs about 33.4 GiB: weights 25.1 GiB + key/value cache 4.0 GiB for 4096 tokens; 16.0 GiB is free" in message
    assert "selfrag-chat model download gguf-q4_k_m" in message
    assert "--dtype bfloat16 (about 16.9 GiB)" in message and "--max-model-len 2048" in message


def test_every_flag_and_command_a_memory_message_names_exists(seven_b, monkeypatch):
    from selfrag_tui.cli import build_parser

    _laptop(monkeypatch, 16)
    with pytest.raises(EngineError) as error:
        TransformersEngine.load(str(seven_b), device="cpu")
    message = str(error.value)
    parser = build_parser()
    for flag, value in re.findall(r"(--[a-z-]+)(?: ([\w.]+))?", message):
        args = ["ask", "question", flag] + ([value] if value and not value.startswith("-") else [])
        parser.parse_args(args)  # SystemExit if the flag or its value does not exist
    for command in re.findall(r"`(selfrag-chat [^`]+)`", message):
        parser.parse_args(command.split()[1:])


def test_the_context_length_is_part_of_the_need(seven_b, monkeypatch):
    _laptop(monkeypatch, 17)  # bfloat16 at 4096 tokens needs 16.9 GiB
    transformers_engine._check_memory(None, seven_b, "7b", "cpu", "bfloat16", 4096)
    total, weights, kv = transformers_engine.memory_needed(seven_b, "bfloat16", 4096)
    assert kv == 2 * GiB and weights == 13_476_872_576
    assert total == int(weights * memory.WEIGHT_HEADROOM) + kv + memory.RUNTIME_OVERHEAD
    _laptop(monkeypatch, 16.5)
    with pytest.raises(EngineError, match="key/value cache 2.0 GiB for 4096 tokens"):
        transformers_engine._check_memory(None, seven_b, "7b", "cpu", "bfloat16", 4096)
    transformers_engine._check_memory(None, seven_b, "7b", "cpu", "bfloat16", 2048)  # 1 GiB less: fits


def test_a_model_in_the_hub_cache_is_checked_like_a_folder(tmp_path, monkeypatch):
    """The old code only checked local folders; a hub name went to transformers unchecked (and downloaded)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--selfrag--selfrag_llama2_7b"
    snapshot = repo / "snapshots" / ("a" * 40)
    _make_seven_b(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    _laptop(monkeypatch, 16)
    with pytest.raises(EngineError, match="not enough memory to run selfrag/selfrag_llama2_7b on cpu in float32"):
        TransformersEngine.load("selfrag/selfrag_llama2_7b", device="cpu")


def test_the_default_model_missing_says_how_to_set_it_up(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(EngineError) as error:
        TransformersEngine.load("selfrag/selfrag_llama2_7b")
    message = str(error.value)
    assert "downloads nothing unless asked" in message
    assert "selfrag-chat model download hf" in message and "selfrag-chat model download gguf-q4_k_m" in message


def test_the_engine_never_downloads_even_when_the_hub_is_allowed(tmp_path, monkeypatch):
    """With offline mode off and a hub answering on loopback, a model that is not on disk is an error, and the
    hub is never asked."""
    from huggingface_hub import constants

    asked: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    try:
        with pytest.raises(EngineError, match="not on this machine"):
            TransformersEngine.load("someone/some-model")
    finally:
        server.shutdown()
    assert asked == []


def test_on_a_gpu_the_weights_are_placed_by_a_device_map_not_copied_from_ram():
    """No full copy in RAM first: the model is built on the GPU through accelerate's device map (CPU loads are
    memory-mapped already). Needs CUDA; skipped elsewhere."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    engine = TransformersEngine.load(str(demo_model_path()), device="cuda", n_threads=1)
    try:
        assert engine.dtype in ("bfloat16", "float16")  # auto on a GPU: 16-bit
        assert getattr(engine._model, "hf_device_map", None) == {"": "cuda"}
        assert all(p.device.type == "cuda" for p in engine._model.parameters())
    finally:
        engine.close()
