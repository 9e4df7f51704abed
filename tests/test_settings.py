"""Settings precedence: defaults < config.toml < SELFRAG_* environment < command-line flags."""

from __future__ import annotations

import pytest

from selfrag_tui.application import locations
from selfrag_tui.cli import _overrides, build_parser
from selfrag_tui.application.settings import Settings, load_settings


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    monkeypatch.setenv("SELFRAG_CONFIG", str(path))
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    for name in ("SELFRAG_DECODING__K", "SELFRAG_DECODING__MODE", "SELFRAG_MODEL__ENGINE"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_defaults_are_the_papers(config):
    s = load_settings()
    assert (s.decoding.mode, s.decoding.threshold, s.decoding.k) == ("adaptive", 0.2, 5)
    assert (s.decoding.w_rel, s.decoding.w_sup, s.decoding.w_use, s.decoding.use_seqscore) == (1.0, 1.0, 0.5, True)
    assert s.decoding.max_new_tokens >= 100


def test_file_then_env_then_flags(config, monkeypatch):
    config.write_text('[decoding]\nk = 3\nmode = "always"\nthreshold = 0.4\n')
    s = load_settings()
    assert (s.decoding.k, s.decoding.mode, s.decoding.threshold) == (3, "always", 0.4)

    monkeypatch.setenv("SELFRAG_DECODING__K", "7")
    s = load_settings()
    assert (s.decoding.k, s.decoding.mode) == (7, "always")

    args = build_parser().parse_args(["ask", "q", "--k", "9"])
    s = load_settings(**_overrides(args))
    assert s.decoding.k == 9
    # A flag changes only its own field; the file's other values stay.
    assert (s.decoding.mode, s.decoding.threshold) == ("always", 0.4)


def test_paths_follow_overrides(config, tmp_path):
    assert locations.config_file() == config
    assert load_settings().store_path == tmp_path / "data" / "store"
    args = build_parser().parse_args(["--store", str(tmp_path / "elsewhere"), "docs"])
    assert load_settings(**_overrides(args)).store_path == tmp_path / "elsewhere"


def test_save_round_trips(config):
    s = load_settings(decoding={"beam_width": 3, "form": "short"})
    s.save()
    again = Settings()
    assert (again.decoding.beam_width, again.decoding.form) == (3, "short")


def test_invalid_setting_is_named(config, capsys):
    from selfrag_tui.cli import main

    config.write_text('[decoding]\nmode = "sometimes"\n')
    assert main(["docs"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and "mode" in err and str(config) in err


def test_updating_the_file_keeps_what_the_user_wrote_and_never_pins_environment_values(config, monkeypatch):
    from selfrag_tui.application.settings import update_settings_file

    config.write_text('# my settings\n[model]\nmodel = "/models/selfrag-7b"\n[decoding]\nk = 3\n')
    monkeypatch.setenv("SELFRAG_DECODING__BEAM_WIDTH", "4")
    update_settings_file({"decoding": {"threshold": 0.35}})
    monkeypatch.delenv("SELFRAG_DECODING__BEAM_WIDTH")
    s = load_settings()
    assert (s.decoding.threshold, s.decoding.k, s.model.model) == (0.35, 3, "/models/selfrag-7b")
    assert s.decoding.beam_width == 2  # the environment's 4 was not written into the file
    assert "beam_width" not in config.read_text()


def test_every_decoding_setting_reaches_the_decoder_with_the_same_default(config):
    """The settings file's [decoding] section and the decoder's DecodingSettings describe the same knobs."""
    import dataclasses

    from selfrag_tui.selfrag.types import DecodingSettings
    from selfrag_tui.application.settings import DecodingSettings

    decoder_defaults = {f.name: f.default for f in dataclasses.fields(DecodingSettings)}
    for name, field in DecodingSettings.model_fields.items():
        assert name in decoder_defaults, name
        assert field.default == decoder_defaults[name], name
    assert load_settings(decoding={"beam_width": 3}).decode_settings().beam_width == 3
