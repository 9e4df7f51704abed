"""`selfrag-chat doctor` on temporary configurations: each problem is found and comes with its fix."""

from __future__ import annotations

import json

import pytest

from selfrag_tui.cli import main
from selfrag_tui.application.doctor import run_checks
from selfrag_tui.application.settings import load_settings


@pytest.fixture
def doctor_env(tmp_path, monkeypatch):
    """Private config file and data folder; no SELFRAG_* variables from the outside."""
    import os

    for name in list(os.environ):
        if name.startswith("SELFRAG_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config.toml"
    monkeypatch.setenv("SELFRAG_CONFIG", str(config))
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def write_config(path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_missing_model_path_is_an_error_with_the_fix(doctor_env):
    write_config(doctor_env / "config.toml", f'[model]\nmodel = "{doctor_env / "no-such-model"}"\n')
    report = run_checks(load_settings())
    (finding,) = report.by_check("model")
    assert finding.status == "error" and "does not exist" in finding.message
    assert "model.model" in finding.fix
    assert not report.ok


def test_missing_gguf_file_with_the_llamacpp_engine(doctor_env):
    gguf = doctor_env / "selfrag.Q8_0.gguf"
    write_config(doctor_env / "config.toml", f'[model]\nmodel = "{gguf}"\n')
    report = run_checks(load_settings())
    assert report.by_check("engines")[-1].details["engine"] == "llamacpp"
    assert report.by_check("model")[0].status == "error"


def test_hub_model_not_in_the_cache_says_how_to_set_it_up(doctor_env, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    report = run_checks(load_settings())
    (finding,) = report.by_check("model")
    assert finding.status == "error" and "not in the Hugging Face cache" in finding.message
    assert "selfrag-chat model download" in finding.fix


def test_vllm_configured_without_a_gpu_is_an_error(doctor_env):
    from selfrag_tui.engines.loader import cuda_available

    if cuda_available():
        pytest.skip("this machine has a CUDA GPU")
    write_config(doctor_env / "config.toml", '[model]\nengine = "vllm"\n')
    findings = run_checks(load_settings()).by_check("engines")
    assert findings[-1].status == "error"
    assert "pip install 'selfrag-chat[vllm]'" in findings[-1].fix or "llamacpp" in findings[-1].fix


def test_tiny_model_is_found_and_fits(doctor_env, tiny_model_dir):
    write_config(doctor_env / "config.toml", f'[model]\nengine = "transformers"\nmodel = "{tiny_model_dir}"\n')
    report = run_checks(load_settings())
    (model,) = report.by_check("model")
    assert model.status == "ok" and model.details["path"] == str(tiny_model_dir)
    (memory,) = report.by_check("memory")
    assert memory.status == "ok" and memory.details["device"] == "cpu" and memory.details["dtype"] == "float32"
    # The tiny model's float32 weights on disk (model.safetensors), as the engine counts them.
    assert memory.details["weights_bytes"] == (tiny_model_dir / "model.safetensors").stat().st_size


def test_a_model_too_big_for_memory_is_the_engines_own_refusal(doctor_env, tiny_model_dir, monkeypatch):
    """doctor reports what loading would say, because it runs the transformers engine's own memory check."""
    from selfrag_tui.application.settings import ModelSettings
    from selfrag_tui.engines import loader, transformers_engine
    from selfrag_tui.engines.base import EngineError

    monkeypatch.setattr(transformers_engine, "_available_memory", lambda torch, device: 1024)
    write_config(doctor_env / "config.toml", f'[model]\nengine = "transformers"\nmodel = "{tiny_model_dir}"\n')
    (memory,) = run_checks(load_settings()).by_check("memory")
    assert memory.status == "error" and "not enough memory" in memory.message and "--demo" in memory.fix
    with pytest.raises(EngineError) as error:
        loader.load_engine(ModelSettings(engine="transformers", model=str(tiny_model_dir)))
    assert str(error.value) == memory.details["error"]


def test_a_server_that_is_down_is_named_with_what_to_do(doctor_env, tiny_model_dir):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_config(doctor_env / "config.toml", f'[model]\nengine = "openai"\nmodel = "selfrag"\n'
                 f'tokenizer = "{tiny_model_dir}"\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    report = run_checks(load_settings())
    (server,) = report.by_check("server")
    assert server.status == "error" and f"http://127.0.0.1:{port}/v1" in server.message
    assert "vllm serve" in server.fix and "--base-url" in server.fix
    assert [f.status for f in report.by_check("model")] == ["ok"]  # the tokenizer is there


@pytest.mark.slow
def test_a_server_serving_the_model_passes(doctor_env, llama_server, tiny_gguf_text_tokens, tiny_model_dir):
    write_config(doctor_env / "config.toml", f'[model]\nengine = "openai"\nmodel = "{tiny_gguf_text_tokens}"\n'
                 f'tokenizer = "{tiny_model_dir}"\nbase_url = "{llama_server}"\n')
    (server,) = run_checks(load_settings()).by_check("server")
    assert server.status == "ok" and str(tiny_gguf_text_tokens) in server.details["served"]


def test_store_health_counts_and_embedder(doctor_env):
    from ingest.store import DocumentStore

    settings = load_settings()
    assert run_checks(settings).by_check("store")[0].status == "info"  # not created yet: ingest hint
    DocumentStore.open(settings.store_path, embedder=settings.store.embedder)
    finding = run_checks(settings).by_check("store")[0]
    assert finding.status == "ok"
    assert finding.details["documents"] == 0 and finding.details["chunks"] == 0
    assert "all-MiniLM-L6-v2" in finding.details["embedder_configured"]
    assert finding.details["tables"] and finding.details["vector_index"] is False


def test_cli_json_output_and_exit_status(doctor_env, capsys):
    write_config(doctor_env / "config.toml", f'[model]\nmodel = "{doctor_env / "gone"}"\n')
    assert main(["doctor", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    checks = {f["check"] for f in data["findings"]}
    assert {"paths", "gpu", "engines", "model", "store"} <= checks
    model = next(f for f in data["findings"] if f["check"] == "model")
    assert model["status"] == "error" and model["fix"]


def test_gguf_vocabulary_is_checked_for_the_self_rag_tokens(doctor_env, tiny_gguf):
    broken = doctor_env / "plain-llama.gguf"
    data = bytearray(tiny_gguf.read_bytes())
    at = data.find(b"[Retrieval]")
    data[at : at + len(b"[Retrieval]")] = b"[Retrievax]"
    broken.write_bytes(bytes(data))
    for path, status in ((tiny_gguf, "ok"), (broken, "error")):
        write_config(doctor_env / "config.toml", f'[model]\nmodel = "{path}"\n')
        vocabulary = [f for f in run_checks(load_settings()).by_check("model") if "Self-RAG tokens" in f.message]
        assert [f.status for f in vocabulary] == [status]
    assert "[Retrieval]" in vocabulary[0].message and "selfrag/selfrag_llama2_7b" in vocabulary[0].fix


def test_embedder_backend_and_its_export_are_reported_without_loading(doctor_env, embedder, monkeypatch):
    """Doctor names the file the loaded embedder runs, and says when it will be exported instead."""
    assert embedder.backend == "onnx-int8"
    [finding] = run_checks(load_settings()).by_check("embedder")
    assert finding.status == "ok" and finding.details["backend"] == "onnx-int8"
    assert finding.details["export"] == str(embedder.export_path) and finding.details["exported"] is True

    monkeypatch.setenv("SELFRAG_CACHE_DIR", str(doctor_env / "cache"))  # an empty cache: nothing exported yet
    [finding] = run_checks(load_settings()).by_check("embedder")
    assert finding.status == "ok" and finding.details["exported"] is False
    assert "on first use" in finding.message
    assert not (doctor_env / "cache").exists()  # a check only looks


def test_an_embedding_model_that_is_not_installed_is_named(doctor_env):
    write_config(doctor_env / "config.toml", f'[store]\nembedder = "{doctor_env / "no-such-model"}"\n')
    [finding] = run_checks(load_settings()).by_check("embedder")
    assert finding.status == "error" and "no-such-model" in finding.message and "store.embedder" in finding.fix


def test_a_hub_embedding_model_is_reported_on_the_pytorch_backend(doctor_env):
    """The ONNX export reads a folder of weights; a model named by its hub id runs on PyTorch, and doctor says so."""
    write_config(doctor_env / "config.toml", '[store]\nembedder = "sentence-transformers/all-mpnet-base-v2"\n')
    [finding] = run_checks(load_settings()).by_check("embedder")
    assert finding.details["backend"] == "torch" and "model folder" in finding.message


def test_a_llamacpp_build_with_the_crashing_amx_kernels_is_named_with_the_rebuild(doctor_env, monkeypatch):
    import llama_cpp

    # The project's own build (make install) leaves the AMX kernels out: no warning.
    assert "AMX_INT8 = 1" not in llama_cpp.llama_print_system_info().decode()
    assert not [f for f in run_checks(load_settings()).by_check("engines") if f.status == "warn"]
    # A native build on a CPU with AMX reports them like this (llama.cpp's own feature line).
    line = b"CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | OPENMP = 1 | "
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: line)
    (warning,) = [f for f in run_checks(load_settings()).by_check("engines") if f.status == "warn"]
    assert "AMX" in warning.message and "Q8_0" in warning.message
    assert "-mno-amx-int8" in warning.fix and "llama-cpp-python==0.3.36" in warning.fix
