"""Model setup without a network: list, recommend, verify, use and rm over Hugging Face cache layouts built the
way huggingface_hub lays them out (models--org--name/blobs, snapshots/<commit>, refs/main), holding the tiny
Self-RAG model and GGUF files converted from it by the packaged converter.

The real 7B weights and GGUF files cannot be fetched here; the tiny model has the same file layout, tokenizer
kind and added-token table, so every check runs on real files through the real libraries (transformers'
tokenizer, llama.cpp's vocabulary, huggingface_hub's cache scanner).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path

import pytest

from selfrag_tui.application import models
from selfrag_tui.application.locations import demo_model_path
from selfrag_tui.application.settings import resolve
from selfrag_tui.engines.memory import GiB, GpuMemory

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HF_FILES = ("config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
            "special_tokens_map.json", "added_tokens.json", "model.safetensors")


def put_in_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str = COMMIT) -> Path:
    """Store `files` (name in the repo -> local file) as huggingface_hub does; return the snapshot folder."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    for name, source in files.items():
        data = source.read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = snapshot / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(Path("../../blobs") / blob.name)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that huggingface_hub and the setup code both use."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text('[decoding]\nk = 3\n\n[model]\nmax_model_len = 2048\n', encoding="utf-8")
    monkeypatch.setenv("SELFRAG_CONFIG", str(path))
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    return path


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory):
    """The tiny model as q4_k_m (reflection tokens typed as text), the same file with them typed CONTROL, and a
    GGUF converted from a copy of the checkpoint without Self-RAG's added tokens."""
    pytest.importorskip("gguf", reason="the gguf package comes with the llamacpp extra")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[llamacpp]')")
    from selfrag_tui.engines.gguf_convert import convert

    root = tmp_path_factory.mktemp("ggufs")
    good = convert(demo_model_path(), root / "selfrag_llama2_7b.q4_k_m.gguf", outtype="q4_k_m")
    control = root / "control" / "selfrag_llama2_7b.q4_k_m.gguf"
    control.parent.mkdir()
    shutil.copy(good, control)
    _type_reflection_tokens(control, "CONTROL")

    plain = root / "plain-llama"
    shutil.copytree(demo_model_path(), plain)
    (plain / "added_tokens.json").unlink()
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {k: v for k, v in config["added_tokens_decoder"].items() if int(k) < 3000}
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    without = convert(plain, root / "no-reflection-tokens.gguf", outtype="f16")
    return {"good": good, "control": control, "without": without}


def _type_reflection_tokens(path: Path, type_name: str) -> None:
    from gguf import GGUFReader, TokenType

    from selfrag_tui.engines.gguf_convert import SELF_RAG_TOKENS

    reader = GGUFReader(path, "r+")
    tokens, types = reader.fields["tokenizer.ggml.tokens"], reader.fields["tokenizer.ggml.token_type"]
    for index, part in enumerate(tokens.data):
        if bytes(tokens.parts[part]).decode() in SELF_RAG_TOKENS:
            types.parts[types.data[index]][0] = int(TokenType[type_name])
    reader.data.flush()
    del reader


def _settings():
    return resolve(read_env=False, read_file=False)


def _machine(ram_gib: float | None, gpu_gib: float | None = None, **engines: bool) -> models.Machine:
    gpus = (GpuMemory(0, "test GPU", int(gpu_gib * GiB), int(gpu_gib * GiB)),) if gpu_gib else ()
    ram = int(ram_gib * GiB) if ram_gib is not None else None
    return models.Machine(ram, ram, gpus, vllm=engines.get("vllm", False), llamacpp=engines.get("llamacpp", True))


# -- list and recommend -----------------------------------------------------------------------------------------


def test_list_gives_each_variant_its_memory_need_at_the_configured_context_and_whether_it_fits(hub_cache):
    statuses = {s.variant.name: s for s in models.list_variants(_settings(), _machine(8))}
    q4, q8, hf = statuses["gguf-q4_k_m"], statuses["gguf-q8_0"], statuses["hf"]
    # Llama-2-7B's key/value cache: 2 x 32 layers x 4096 x 2 bytes = 0.5 MiB per token, 2 GiB at 4096 tokens.
    assert q4.needed - q4.variant.weight_bytes * 1.15 == pytest.approx(2 * GiB + 0.5 * GiB, rel=1e-3)
    assert q4.engine == "llamacpp" and q4.runs_on == "cpu" and q4.fits is True
    assert q8.fits is False  # 7.16 GB of weights + 2 GiB cache does not fit in 8 GiB
    assert hf.engine == "transformers" and hf.runs_on == "cpu" and hf.fits is False and "bfloat16" in hf.note
    shorter = resolve([({"model": {"max_model_len": 1024}}, "test")], read_env=False, read_file=False)
    q4_short = {s.variant.name: s for s in models.list_variants(shorter, _machine(8))}["gguf-q4_k_m"]
    assert q4.needed - q4_short.needed == pytest.approx(1.5 * GiB, rel=1e-3)
    assert not any(s.downloaded for s in statuses.values())


def test_recommend_takes_the_gpu_when_it_holds_the_16_bit_weights(hub_cache):
    choice = models.recommend(_settings(), _machine(16, gpu_gib=24, vllm=True))
    assert choice.status.variant.name == "hf" and choice.status.engine == "vllm"
    assert "GPU" in choice.reason


def test_recommend_on_a_16_gb_laptop_is_the_8_bit_gguf_and_on_an_8_gb_one_the_4_bit(hub_cache):
    assert models.recommend(_settings(), _machine(14)).status.variant.name == "gguf-q8_0"
    small = models.recommend(_settings(), _machine(7.5))
    assert small.status.variant.name == "gguf-q4_k_m" and "4-bit" in small.reason


def test_a_machine_too_small_for_any_variant_is_told_so_with_what_to_do(hub_cache):
    choice = models.recommend(_settings(), _machine(3))
    assert choice.status is None
    assert "nothing fits" in choice.reason and "--max-model-len" in choice.reason and "model use http" in choice.reason


def test_list_finds_variants_in_the_hub_cache(hub_cache, ggufs):
    snapshot = put_in_hub_cache(hub_cache, "selfrag/selfrag_llama2_7b",
                                {n: demo_model_path() / n for n in HF_FILES})
    gguf_file = put_in_hub_cache(hub_cache, "m4r1/selfrag_llama2_7b-GGUF",
                                 {"selfrag_llama2_7b.q4_k_m.gguf": ggufs["good"]}) / "selfrag_llama2_7b.q4_k_m.gguf"
    statuses = {s.variant.name: s for s in models.list_variants(_settings(), _machine(8))}
    assert statuses["hf"].path == snapshot
    assert statuses["gguf-q4_k_m"].path == gguf_file
    assert statuses["gguf-q5_k_m"].path is None and statuses["gguf-q8_0"].path is None


# -- verify ---------------------------------------------------------------------------------------------------


def test_verify_accepts_the_tiny_checkpoint_in_the_hub_cache(hub_cache):
    snapshot = put_in_hub_cache(hub_cache, "selfrag/selfrag_llama2_7b", {n: demo_model_path() / n for n in HF_FILES})
    check = models.verify("hf")
    assert check.ok, check.problems
    assert check.target == str(snapshot)
    assert check.token_ids["[Retrieval]"] == 3001 and len(check.token_ids) == 16


def _strip_added_tokens(folder: Path, *, keep_special_tokens_map: bool) -> None:
    (folder / "added_tokens.json").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {k: v for k, v in config["added_tokens_decoder"].items() if int(k) < 3000}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if not keep_special_tokens_map:
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            data = json.loads((folder / name).read_text())
            data.pop("additional_special_tokens")
            data.pop("pad_token")
            (folder / name).write_text(json.dumps(data))


def test_verify_rejects_a_plain_llama_tokenizer(tmp_path):
    folder = tmp_path / "plain"
    shutil.copytree(demo_model_path(), folder)
    _strip_added_tokens(folder, keep_special_tokens_map=False)
    check = models.verify(folder)
    assert not check.ok
    assert "lacks 16 of the 16 Self-RAG tokens" in check.problems[0]


def test_verify_rejects_a_tokenizer_that_numbers_the_reflection_tokens_differently(tmp_path):
    """Without added_tokens.json transformers rebuilds the tokens from special_tokens_map.json, <pad> first."""
    folder = tmp_path / "renumbered"
    shutil.copytree(demo_model_path(), folder)
    _strip_added_tokens(folder, keep_special_tokens_map=True)
    check = models.verify(folder)
    assert not check.ok
    assert "numbers the Self-RAG tokens differently" in check.problems[0]


def test_verify_names_a_folder_without_weights(tmp_path):
    folder = tmp_path / "weightless"
    folder.mkdir()
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json", "added_tokens.json"):
        shutil.copy(demo_model_path() / name, folder / name)
    check = models.verify(folder)
    assert any("has no weights" in p for p in check.problems)


def test_verify_accepts_a_converted_gguf_whose_reflection_tokens_llama_cpp_returns_as_text(ggufs):
    check = models.verify(ggufs["good"])
    assert check.ok, check.problems
    assert check.kind == "gguf" and check.token_ids["[Retrieval]"] == 3001


def test_verify_rejects_a_gguf_without_reflection_tokens(ggufs):
    check = models.verify(ggufs["without"])
    assert not check.ok and not check.retypable
    assert "does not read 15 of the 15 reflection tokens as single tokens" in check.problems[0]


def test_a_gguf_with_control_typed_reflection_tokens_is_caught_and_retype_fixes_it(ggufs, tmp_path):
    import llama_cpp

    copy = tmp_path / "control.gguf"
    shutil.copy(ggufs["control"], copy)
    llama = llama_cpp.Llama(model_path=str(copy), vocab_only=True, verbose=False)
    assert llama.detokenize([3001], special=False) == b""  # what a llama.cpp server would send for [Retrieval]
    llama.close()
    check = models.verify(copy)
    assert not check.ok and check.retypable
    assert "control tokens" in check.problems[0] and f"model verify {copy} --retype" in check.problems[0]

    assert models.retype(copy) == 15
    assert models.verify(copy).ok
    llama = llama_cpp.Llama(model_path=str(copy), vocab_only=True, verbose=False)
    assert llama.detokenize([3001], special=False) == b"[Retrieval]"
    llama.close()


def test_verify_of_a_truncated_gguf_says_so(ggufs, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(ggufs["good"].read_bytes()[:4096])
    check = models.verify(cut)
    assert not check.ok
    assert str(cut) in check.problems[0]


# -- use ------------------------------------------------------------------------------------------------------


def test_use_a_gguf_writes_only_the_model_keys(ggufs, config_file, tmp_path):
    target = tmp_path / "mine" / "selfrag.gguf"
    target.parent.mkdir()
    shutil.copy(ggufs["good"], target)
    result = models.use(target)
    assert result.saved_to == config_file
    written = tomllib.loads(config_file.read_text())
    assert written["model"] == {"engine": "llamacpp", "model": str(target), "max_model_len": 2048}
    assert written["decoding"] == {"k": 3}


def test_use_a_gguf_next_to_its_tokenizer_files_sets_the_tokenizer_too(ggufs, config_file, hub_cache):
    snapshot = put_in_hub_cache(hub_cache, "m4r1/selfrag_llama2_7b-GGUF", {
        "selfrag_llama2_7b.q4_k_m.gguf": ggufs["good"],
        **{n: demo_model_path() / n for n in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                                                "added_tokens.json", "config.json")},
    })
    result = models.use("gguf-q4_k_m")
    assert result.updates["model"] == {"engine": "llamacpp", "model": str(snapshot / "selfrag_llama2_7b.q4_k_m.gguf"),
                                       "tokenizer": str(snapshot)}


def test_use_refuses_an_unusable_gguf_and_writes_nothing(ggufs, config_file):
    before = config_file.read_text()
    with pytest.raises(models.ModelSetupError, match="cannot be used"):
        models.use(ggufs["without"])
    assert config_file.read_text() == before


def test_use_a_folder_clears_a_previous_gguf_setting(config_file, tmp_path):
    config_file.write_text('[model]\nengine = "llamacpp"\nmodel = "/x.gguf"\ntokenizer = "/tok"\n', encoding="utf-8")
    folder = tmp_path / "tiny"
    shutil.copytree(demo_model_path(), folder)
    models.use(folder)
    assert tomllib.loads(config_file.read_text())["model"] == {"engine": "auto", "model": str(folder)}


def test_use_a_server_checks_it_serves_the_model_and_the_tokenizer_is_local(config_file, tmp_path):
    import http.server
    import threading

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"data": [{"id": "selfrag/selfrag_llama2_7b"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        wrong = models.verify(url, served_name="other", tokenizer=str(demo_model_path()))
        assert "not 'other'" in wrong.problems[0]
        result = models.use(url, served_name="selfrag/selfrag_llama2_7b", tokenizer=str(demo_model_path()))
    finally:
        server.shutdown()
    assert result.updates["model"] == {"engine": "openai", "base_url": url, "model": "selfrag/selfrag_llama2_7b",
                                       "tokenizer": str(demo_model_path())}
    down = models.verify(url, tokenizer=str(demo_model_path()))
    assert "does not answer" in down.problems[0]


# -- rm -------------------------------------------------------------------------------------------------------


def test_rm_deletes_the_checkpoint_through_the_cache_api(hub_cache):
    from huggingface_hub import scan_cache_dir

    put_in_hub_cache(hub_cache, "selfrag/selfrag_llama2_7b", {n: demo_model_path() / n for n in HF_FILES})
    partial = hub_cache / "models--selfrag--selfrag_llama2_7b" / "blobs" / "abc.incomplete"
    partial.write_bytes(b"x" * 10)
    assert scan_cache_dir(hub_cache).repos
    settings = resolve([({"model": {"model": "selfrag/selfrag_llama2_7b"}}, "test")], read_env=False, read_file=False)
    removal = models.remove("hf", settings=settings)
    assert removal.freed >= (demo_model_path() / "model.safetensors").stat().st_size
    assert removal.settings_still_point_here
    assert not any(r.repo_id == "selfrag/selfrag_llama2_7b" for r in scan_cache_dir(hub_cache).repos)
    assert not partial.exists() and models.local_path(models.variant("hf")) is None


def test_rm_of_one_gguf_keeps_the_other_variant_of_the_same_repository(hub_cache, ggufs, tmp_path):
    other = tmp_path / "q5.gguf"
    other.write_bytes(ggufs["good"].read_bytes() + b"\0" * 64)  # a different blob
    snapshot = put_in_hub_cache(hub_cache, "m4r1/selfrag_llama2_7b-GGUF", {
        "selfrag_llama2_7b.q4_k_m.gguf": ggufs["good"], "selfrag_llama2_7b.q5_k_m.gguf": other})
    removal = models.remove("gguf-q4_k_m")
    assert removal.removed == [snapshot / "selfrag_llama2_7b.q4_k_m.gguf"]
    assert models.local_path(models.variant("gguf-q4_k_m")) is None
    assert models.verify("gguf-q5_k_m").target == str(snapshot / "selfrag_llama2_7b.q5_k_m.gguf")
    blobs = list((hub_cache / "models--m4r1--selfrag_llama2_7b-GGUF" / "blobs").iterdir())
    assert len(blobs) == 1


def test_rm_of_a_variant_that_is_not_there_says_so(hub_cache):
    with pytest.raises(models.ModelSetupError, match="not downloaded"):
        models.remove("gguf-q8_0")


# -- the command --------------------------------------------------------------------------------------------------


def test_model_use_and_verify_commands(ggufs, config_file, tmp_path, capsys):
    from selfrag_tui.cli import main

    target = tmp_path / "control.gguf"
    shutil.copy(ggufs["control"], target)
    assert main(["model", "use", str(target)]) == 1
    assert "--retype" in capsys.readouterr().err
    assert main(["model", "verify", str(target), "--retype"]) == 0
    assert "re-typed 15 reflection tokens" in capsys.readouterr().out
    assert main(["model", "use", str(target)]) == 0
    assert tomllib.loads(config_file.read_text())["model"]["model"] == str(target)
    assert main(["model", "verify"]) == 0  # the configured model
    assert "is a usable Self-RAG model" in capsys.readouterr().out


def test_the_configured_default_model_not_downloaded_says_how_to_get_it(hub_cache):
    check = models.configured_model_ready(_settings())
    assert not check.ok
    assert "selfrag/selfrag_llama2_7b is not downloaded" in check.problems[0]
    assert "selfrag-chat model download hf" in check.problems[0] and "model recommend" in check.problems[0]


def test_settings_flags_work_after_the_step_as_before_it(hub_cache, capsys):
    """`model list --max-model-len N` and `model --max-model-len N list` size the cache alike; a step's own option
    of the same name (`use --tokenizer`) stays the step's."""
    from selfrag_tui.cli import build_parser, main

    needed = {}
    for argv in (["model", "list", "--json"], ["model", "list", "--max-model-len", "16384", "--json"],
                 ["model", "--max-model-len", "16384", "list", "--json"]):
        assert main(argv) == 0
        rows = json.loads(capsys.readouterr().out)
        needed[tuple(argv)] = next(r for r in rows if r["variant"] == "hf")
    after, before = needed[("model", "list", "--max-model-len", "16384", "--json")], \
        needed[("model", "--max-model-len", "16384", "list", "--json")]
    assert after["needed_bytes"] == before["needed_bytes"] and after["context"] == before["context"] == 16384
    assert after["needed_bytes"] > needed[("model", "list", "--json")]["needed_bytes"]
    args = build_parser().parse_args(["model", "use", "http://127.0.0.1:1/v1", "--tokenizer", "tok"])
    assert args.tokenizer == "tok" and args.set__model__tokenizer is None
