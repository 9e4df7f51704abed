"""The packaged GGUF converter (`selfrag-chat model convert`) against llama.cpp's own converter.

llama.cpp's `convert_hf_to_gguf.py` (taken from the llama-cpp-python source archive by the `tiny_gguf` fixture)
is the reference: on the tiny Self-RAG model the packaged converter must write the same tensors and vocabulary, so
llama.cpp tokenises and scores both files identically. The one intended difference is the type of the Self-RAG
tokens: text (USER_DEFINED) instead of CONTROL, so llama.cpp returns them in answers.
"""

from __future__ import annotations

import json
import shutil
import tomllib

import numpy as np
import pytest

from selfrag_tui.application.locations import demo_model_path

gguf = pytest.importorskip("gguf", reason="the gguf package comes with the llamacpp extra")
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[llamacpp]')")

from selfrag_tui.engines.gguf_convert import SELF_RAG_TOKENS, ConversionError, convert  # noqa: E402

PROMPTS = (
    "### Instruction:\nCan you tell me the difference between llamas and alpacas?\n\n### Response:\n",
    "### Instruction:\nCan you tell me the difference between llamas and alpacas?\n\n### Response:\n[Retrieval]"
    "<paragraph>Alpacas are smaller than llamas.</paragraph>",
)


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    root = tmp_path_factory.mktemp("ours")
    return {t: convert(demo_model_path(), root / f"tiny-{t}.gguf", outtype=t) for t in ("f32", "q8_0")}


def _last_logits(path) -> list[tuple[list[int], np.ndarray]]:
    model = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=512, n_threads=1, verbose=False)
    try:
        out = []
        for prompt in PROMPTS:
            ids = model.tokenize(prompt.encode(), add_bos=True, special=True)
            model.reset()
            model.eval(ids)
            out.append((ids, np.array(model.scores[len(ids) - 1], dtype=np.float32)))
        return out
    finally:
        model.close()


def _fields(path):
    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    types = reader.fields["tokenizer.ggml.token_type"]
    vocab = [bytes(tokens.parts[p]).decode() for p in tokens.data]
    kinds = [int(types.parts[p][0]) for p in types.data]
    tensors = {t.name: (t.tensor_type.name, np.array(t.data)) for t in reader.tensors}
    return reader, vocab, kinds, tensors


def test_f32_matches_llama_cpps_own_converter_tensor_for_tensor_and_token_for_token(ours, tiny_gguf):
    _, vocab, kinds, tensors = _fields(ours["f32"])
    _, ref_vocab, ref_kinds, ref_tensors = _fields(tiny_gguf)
    assert vocab == ref_vocab
    reflection = {i for i, t in enumerate(vocab) if t in SELF_RAG_TOKENS}
    assert len(reflection) == 15
    assert [k for i, k in enumerate(kinds) if i not in reflection] == \
        [k for i, k in enumerate(ref_kinds) if i not in reflection]
    assert {ref_kinds[i] for i in reflection} == {int(gguf.TokenType.CONTROL)}
    assert {kinds[i] for i in reflection} == {int(gguf.TokenType.USER_DEFINED)}
    assert tensors.keys() == ref_tensors.keys()
    for name, (kind, data) in tensors.items():
        assert kind == ref_tensors[name][0] == "F32"
        np.testing.assert_array_equal(data, ref_tensors[name][1], err_msg=name)
    for (ids, logits), (ref_ids, ref_logits) in zip(_last_logits(ours["f32"]), _last_logits(tiny_gguf)):
        assert ids == ref_ids
        np.testing.assert_array_equal(logits, ref_logits)


def test_q8_0_quantises_the_matrices_and_keeps_the_next_token(ours):
    _, _, _, tensors = _fields(ours["q8_0"])
    assert tensors["blk.0.attn_q.weight"][0] == "Q8_0" and tensors["blk.0.attn_norm.weight"][0] == "F32"
    assert ours["q8_0"].stat().st_size < ours["f32"].stat().st_size / 2.5
    for (ids, logits), (_, full) in zip(_last_logits(ours["q8_0"]), _last_logits(ours["f32"])):
        assert int(np.argmax(logits)) == int(np.argmax(full))
        # 8-bit weights move each logit by a few percent of the logits' spread, and no probability by more than
        # 0.05. A probability in the middle of its range moves most: with the passage, p([Relevant]) is 0.82 in
        # f32 and 0.78 in Q8_0 (each dot product here averages its rounding errors over 128 dimensions, not 4096).
        assert float(np.max(np.abs(logits - full))) < 0.03 * float(np.ptp(full))
        probabilities = [np.exp(x - np.logaddexp.reduce(x)) for x in (logits, full)]
        assert float(np.max(np.abs(probabilities[0] - probabilities[1]))) < 0.05


def test_q4_k_m_is_made_by_llama_cpps_quantiser_and_keeps_its_reflection_tokens(tmp_path):
    from selfrag_tui.engines.gguf_convert import check_gguf_tokens

    path = convert(demo_model_path(), tmp_path / "tiny-q4_k_m.gguf", outtype="q4_k_m")
    reader = gguf.GGUFReader(str(path))
    assert int(reader.fields["general.file_type"].contents()) == int(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    assert all(check.usable for check in check_gguf_tokens(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-q4_k_m.gguf"]  # no f16 or partial file left


def test_a_pytorch_bin_checkpoint_converts_to_the_same_file(ours, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin-checkpoint"
    shutil.copytree(demo_model_path(), folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    path = convert(folder, tmp_path / "from-bin.gguf", outtype="f32")
    _, vocab, kinds, tensors = _fields(path)
    _, ref_vocab, ref_kinds, ref_tensors = _fields(ours["f32"])
    assert (vocab, kinds) == (ref_vocab, ref_kinds)
    assert tensors.keys() == ref_tensors.keys()
    for name, (kind, data) in tensors.items():
        assert kind == ref_tensors[name][0]
        np.testing.assert_array_equal(data, ref_tensors[name][1], err_msg=name)


def test_not_enough_disk_space_is_refused_before_writing(tmp_path):
    with pytest.raises(ConversionError, match="not enough free disk space") as error:
        convert(demo_model_path(), tmp_path / "out" / "x.gguf", outtype="q4_k_m", free_disk=lambda path: 1000)
    assert "--outfile" in str(error.value)
    assert not any((tmp_path / "out").iterdir())


def test_a_checkpoint_that_is_not_a_llama_is_refused(tmp_path):
    folder = tmp_path / "gpt2ish"
    shutil.copytree(demo_model_path(), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="only Llama checkpoints"):
        convert(folder, tmp_path / "x.gguf")


def test_the_convert_command_writes_verifies_and_uses_the_file(tmp_path, monkeypatch, capsys):
    from selfrag_tui.cli import main

    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    monkeypatch.setenv("SELFRAG_CONFIG", str(config))
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "selfrag-q8_0.gguf"
    assert main(["model", "convert", str(demo_model_path()), "--outtype", "q8_0", "--outfile", str(out), "--use"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "is a usable Self-RAG model" in printed
    assert tomllib.loads(config.read_text())["model"] == {"engine": "llamacpp", "model": str(out)}


def test_the_convert_command_reports_a_converter_error_in_words(tmp_path, monkeypatch, capsys):
    from selfrag_tui.cli import main

    monkeypatch.setenv("SELFRAG_CONFIG", str(tmp_path / "config.toml"))
    folder = tmp_path / "gpt2ish"
    shutil.copytree(demo_model_path(), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["model", "convert", str(folder), "--outfile", str(tmp_path / "x.gguf")]) == 1
    assert "only Llama checkpoints" in capsys.readouterr().err
