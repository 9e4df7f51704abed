"""`selfrag-chat doctor` on temporary configurations: each problem is found and comes with its fix."""

from __future__ import annotations

import json

import pytest

from selfrag_tui.cli import main
from selfrag_tui.application.doctor import estimate_parameters, run_checks
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


def test_hub_model_not_in_the_cache_says_how_to_download(doctor_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    report = run_checks(load_settings())
    (finding,) = report.by_check("model")
    assert finding.status == "error" and "local Hugging Face cache" in finding.message
    assert "hf download selfrag/selfrag_llama2_7b" in finding.fix


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
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert model.status == "ok" and model.details["parameters"] == estimate_parameters(config)
    assert report.by_check("memory")[0].status == "ok"


def test_llama2_7b_shape_is_estimated_at_6_7_billion_parameters():
    config = dict(hidden_size=4096, num_hidden_layers=32, vocab_size=32016, intermediate_size=11008,
                  num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)
    assert estimate_parameters(config) == 6_738_546_688


def test_store_health_counts_and_embedder(doctor_env):
    from ingest.store import DocumentStore

    settings = load_settings()
    assert run_checks(settings).by_check("store")[0].status == "info"  # not created yet: ingest hint
    DocumentStore.open(settings.store_path, embedder=settings.store.embedder)
    (finding,) = run_checks(settings).by_check("store")
    assert finding.status == "ok"
    assert finding.details["documents"] == 0 and finding.details["chunks"] == 0
    assert "all-MiniLM-L6-v2" in finding.details["embedder"]
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
