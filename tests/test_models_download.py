"""`model download` against a hub on loopback: a small HTTP server that answers the three requests huggingface_hub
makes (the repository's file list, a HEAD per file with its commit, ETag and size, and ranged GETs), serving the
tiny Self-RAG checkpoint and a GGUF converted from it under the real repository names.

What this cannot cover: the real hub's redirects to its CDN and Xet storage, authentication, and the real 7B
files. The download code is the real one (huggingface_hub's metadata calls, session and cache placement).
"""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

import pytest
from hub_server import COMMIT, HF_FILES, Hub

from selfrag_tui.application import models
from selfrag_tui.application.locations import demo_model_path

@pytest.fixture(scope="module")
def tiny_q4(tmp_path_factory):
    pytest.importorskip("gguf", reason="the gguf package comes with the llamacpp extra")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[llamacpp]')")
    from selfrag_tui.engines.gguf_convert import convert

    return convert(demo_model_path(), tmp_path_factory.mktemp("q4") / "t.gguf", outtype="q4_k_m")


@pytest.fixture
def hub(tiny_q4):
    padding = b"\0" * (3 * 2**20)  # GGUF readers ignore bytes after the tensor data; makes the file span chunks
    served = Hub({
        "selfrag/selfrag_llama2_7b": {n: (demo_model_path() / n).read_bytes() for n in HF_FILES},
        "m4r1/selfrag_llama2_7b-GGUF": {
            "selfrag_llama2_7b.q4_k_m.gguf": tiny_q4.read_bytes() + padding,
            "selfrag_llama2_7b.q5_k_m.gguf": b"not fetched",
            "README.md": b"# model card",
        },
    })
    yield served
    served.close()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    config = tmp_path / "config.toml"
    config.write_text("[decoding]\nk = 4\n", encoding="utf-8")
    monkeypatch.setenv("SELFRAG_CONFIG", str(config))
    return cache, config


def test_download_fetches_verifies_and_points_the_settings_at_the_gguf(hub, setup):
    cache, config = setup
    updates: list[models.DownloadProgress] = []
    result = models.download("gguf-q4_k_m", endpoint=hub.endpoint, on_progress=updates.append)
    snapshot = cache / "models--m4r1--selfrag_llama2_7b-GGUF" / "snapshots" / COMMIT
    assert result.path == snapshot / "selfrag_llama2_7b.q4_k_m.gguf"
    assert result.path.is_symlink() and result.path.resolve().parent.name == "blobs"
    assert result.verification.ok and result.retyped == 0
    assert not any("q5_k_m" in path for _, path, _ in hub.requests)  # only the variant asked for
    assert updates[-1].done == updates[-1].total == sum(
        len(d) for n, d in hub.repos["m4r1/selfrag_llama2_7b-GGUF"].items() if n.endswith("q4_k_m.gguf"))
    written = tomllib.loads(config.read_text())
    assert written["model"]["engine"] == "llamacpp" and written["model"]["model"] == str(result.path)
    assert written["decoding"] == {"k": 4}
    # huggingface_hub itself now finds it offline, like any file it downloaded.
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache("m4r1/selfrag_llama2_7b-GGUF", "selfrag_llama2_7b.q4_k_m.gguf") == str(result.path)


def test_download_of_the_checkpoint_gives_a_folder_the_transformers_engine_loads(hub, setup):
    from selfrag_tui.engines.transformers_engine import TransformersEngine

    result = models.download("hf", endpoint=hub.endpoint, use_it=False)
    assert result.use is None and result.verification.ok
    engine = TransformersEngine.load("selfrag/selfrag_llama2_7b", device="cpu", n_threads=1)  # from the cache
    assert engine.token_id("[Retrieval]") == 3001
    engine.close()


def test_a_stopped_download_keeps_its_partial_file_and_the_next_run_resumes_it(hub, setup):
    cache, _ = setup
    cancel = threading.Event()

    def stop_after_first_chunk(update: models.DownloadProgress) -> None:
        if update.file_done >= 2**20:
            cancel.set()

    with pytest.raises(models.DownloadCancelled, match="resumes it"):
        models.download("gguf-q4_k_m", endpoint=hub.endpoint, cancel=cancel, on_progress=stop_after_first_chunk)
    partials = list((cache / "models--m4r1--selfrag_llama2_7b-GGUF" / "blobs").glob("*.incomplete"))
    assert len(partials) == 1 and partials[0].stat().st_size >= 2**20
    kept = partials[0].stat().st_size

    hub.requests.clear()
    result = models.download("gguf-q4_k_m", endpoint=hub.endpoint)
    assert ("GET", f"/m4r1/selfrag_llama2_7b-GGUF/resolve/{COMMIT}/selfrag_llama2_7b.q4_k_m.gguf",
            f"bytes={kept}-") in hub.requests
    assert result.verification.ok and not partials[0].exists()


def test_not_enough_disk_space_is_refused_before_the_first_byte(hub, setup):
    cache, config = setup
    before = config.read_text()
    with pytest.raises(models.ModelSetupError, match="not enough free disk space") as error:
        models.download("gguf-q4_k_m", endpoint=hub.endpoint, free_disk=lambda path: 100 * 2**20)
    assert "HF_HUB_CACHE" in str(error.value)
    assert not any(method == "GET" and "/resolve/" in path for method, path, _ in hub.requests)
    assert config.read_text() == before


def test_a_hub_that_cannot_be_reached_names_what_to_copy_by_hand(setup):
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(models.HubUnreachable) as error:
        models.download("gguf-q4_k_m", endpoint=f"http://127.0.0.1:{port}")
    message = str(error.value)
    assert "cannot reach the Hugging Face hub" in message
    assert "https://huggingface.co/m4r1/selfrag_llama2_7b-GGUF/tree/main" in message and "*q4_k_m*.gguf" in message
    assert "selfrag-chat model use PATH" in message


def test_a_repository_that_renamed_its_file_is_explained(hub, setup):
    hub.repos["m4r1/selfrag_llama2_7b-GGUF"].pop("selfrag_llama2_7b.q4_k_m.gguf")
    with pytest.raises(models.ModelSetupError, match=r"no file matching \*q4_k_m\*.gguf"):
        models.download("gguf-q4_k_m", endpoint=hub.endpoint)


def test_outside_a_download_the_program_sends_nothing_to_the_hub(hub, setup, monkeypatch):
    """After `stay_offline` huggingface_hub refuses to send requests; the download lifts that only for itself."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    from selfrag_tui.application import offline

    for name in offline.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    offline.stay_offline()
    with pytest.raises(OfflineModeIsEnabled):
        HfApi(endpoint=hub.endpoint).model_info("selfrag/selfrag_llama2_7b")
    assert hub.requests == []
    models.download("hf", endpoint=hub.endpoint, use_it=False)
    assert hub.requests and constants.HF_HUB_OFFLINE is True
    assert offline.is_offline()


def test_the_download_command_draws_progress_and_reports_the_hub_error(setup, capsys, monkeypatch):
    import socket

    from selfrag_tui.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    real = models.download
    monkeypatch.setattr(models, "download", lambda *a, **k: real(*a, endpoint=f"http://127.0.0.1:{port}", **k))
    assert main(["model", "download", "gguf-q8_0"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Hugging Face hub" in err and "devilteo911/selfrag_llama2_7b-q8_0" in err


def test_cache_paths_are_the_ones_huggingface_hub_uses(setup):
    cache, _ = setup
    assert models.hub_cache_dir() == Path(cache)


def test_ctrl_c_during_the_download_command_keeps_the_partial_file_and_says_how_to_resume(hub, setup, capsys,
                                                                                           monkeypatch):
    from selfrag_tui.cli import main

    cache, config = setup
    before = config.read_text()
    real = models.download

    def interrupted(*args, on_progress=None, **kwargs):
        def press_ctrl_c(update: models.DownloadProgress) -> None:
            on_progress(update)
            if update.file_done >= 2**20:
                raise KeyboardInterrupt

        return real(*args, endpoint=hub.endpoint, on_progress=press_ctrl_c, **kwargs)

    monkeypatch.setattr(models, "download", interrupted)
    assert main(["model", "download", "gguf-q4_k_m"]) == 130
    err = capsys.readouterr().err
    assert "download of gguf-q4_k_m stopped" in err and "selfrag-chat model download gguf-q4_k_m` resumes it" in err
    assert list((cache / "models--m4r1--selfrag_llama2_7b-GGUF" / "blobs").glob("*.incomplete"))
    assert config.read_text() == before


def test_a_connection_dropped_mid_file_is_resumed_in_the_same_run(hub, setup):
    hub.drop_after = 1_500_000
    result = models.download("gguf-q4_k_m", endpoint=hub.endpoint)
    gets = [r for m, path, r in hub.requests if m == "GET" and path.endswith("q4_k_m.gguf")]
    assert gets == [None, "bytes=1500000-"]
    assert result.verification.ok


def test_a_published_gguf_with_control_typed_reflection_tokens_is_retyped_on_download(hub, setup, tiny_q4, tmp_path):
    from gguf import GGUFReader, TokenType

    from selfrag_tui.engines.gguf_convert import SELF_RAG_TOKENS

    control = tmp_path / "control.gguf"
    control.write_bytes(tiny_q4.read_bytes())
    reader = GGUFReader(control, "r+")
    tokens, types = reader.fields["tokenizer.ggml.tokens"], reader.fields["tokenizer.ggml.token_type"]
    for index, part in enumerate(tokens.data):
        if bytes(tokens.parts[part]).decode() in SELF_RAG_TOKENS:
            types.parts[types.data[index]][0] = int(TokenType.CONTROL)
    reader.data.flush()
    del reader
    hub.repos["m4r1/selfrag_llama2_7b-GGUF"]["selfrag_llama2_7b.q4_k_m.gguf"] = control.read_bytes()
    result = models.download("gguf-q4_k_m", endpoint=hub.endpoint)
    assert result.retyped == 15 and result.verification.ok


def test_without_the_hub_a_variant_already_downloaded_is_verified_and_used(hub, setup):
    import socket

    cache, config = setup
    models.download("gguf-q4_k_m", endpoint=hub.endpoint, use_it=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = models.download("gguf-q4_k_m", endpoint=f"http://127.0.0.1:{port}")
    assert "could not be reached" in result.note and result.verification.ok
    assert tomllib.loads(config.read_text())["model"]["model"] == str(result.path)
