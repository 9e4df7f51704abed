"""Settings: one schema, one merge (defaults < config.toml < SELFRAG_* environment < flags < in-app changes), and
every entry point refusing a bad value before any work starts, with the setting's name, the value, where it came
from and the allowed range."""

from __future__ import annotations

import json

import pytest

from selfrag_tui.application import locations
from selfrag_tui.application.settings import (
    SettingsError,
    load_settings,
    option_spec,
    option_specs,
    resolve,
    update_settings_file,
)
from selfrag_tui.cli import build_parser, flag_layers, main


@pytest.fixture
def config(tmp_path, monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SELFRAG_"):
            monkeypatch.delenv(name)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("SELFRAG_CONFIG", str(path))
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    return path


def settings_from(argv: list[str]):
    return resolve(flag_layers(build_parser().parse_args(argv)))


def test_defaults_are_the_papers(config):
    s = load_settings()
    assert (s.decoding.mode, s.decoding.threshold, s.decoding.k) == ("adaptive", 0.2, 5)
    assert (s.decoding.w_rel, s.decoding.w_sup, s.decoding.w_use, s.decoding.use_seqscore) == (1.0, 1.0, 0.5, True)
    assert (s.decoding.beam_width, s.decoding.max_segments) == (2, 6)
    assert (s.ingest.chunk_words, s.store.search_mode, s.model.engine) == (150, "hybrid", "auto")


def test_file_then_environment_then_flags(config, monkeypatch):
    config.write_text('[decoding]\nk = 3\nmode = "always"\nthreshold = 0.4\n')
    s = load_settings()
    assert (s.decoding.k, s.decoding.mode, s.decoding.threshold) == (3, "always", 0.4)

    monkeypatch.setenv("SELFRAG_DECODING__K", "7")
    assert load_settings().decoding.k == 7

    s = settings_from(["ask", "q", "--k", "9"])
    assert s.decoding.k == 9
    # A flag changes only its own field; the file's other values stay.
    assert (s.decoding.mode, s.decoding.threshold) == ("always", 0.4)


def test_in_app_changes_sit_on_top_and_are_validated_the_same_way(config):
    s = load_settings().with_updates({"decoding": {"k": 4}}, source="the settings screen")
    assert s.decoding.k == 4
    with pytest.raises(SettingsError) as info:
        s.with_updates({"decoding": {"beam_width": 0}}, source="the settings screen")
    assert "decoding.beam_width = 0 (from the settings screen)" in str(info.value)
    assert "allowed: 1 to 16" in str(info.value)


# -- every entry point refuses an out-of-range value, naming it --------------------------------------------------


def test_a_flag_out_of_range_is_refused_before_any_work(config, capsys):
    assert main(["ask", "--demo", "--threshold", "7", "How often should I water tomatoes?"]) == 2
    err = capsys.readouterr().err
    assert "decoding.threshold = 7 (from --threshold)" in err and "allowed: 0 to 1" in err
    assert not (locations.data_dir() / "demo-store").exists(), "nothing was ingested or loaded"


def test_an_environment_value_out_of_range_names_the_variable(config, monkeypatch, capsys):
    monkeypatch.setenv("SELFRAG_DECODING__K", "0")
    assert main(["docs"]) == 2
    err = capsys.readouterr().err
    assert "decoding.k = 0 (from the environment variable SELFRAG_DECODING__K)" in err
    assert "allowed: 1 to 50" in err


def test_a_file_value_out_of_range_names_the_file(config, capsys):
    config.write_text("[ingest]\nchunk_words = 5\n")
    assert main(["docs"]) == 2
    err = capsys.readouterr().err
    assert f"ingest.chunk_words = 5 (from the settings file {config})" in err and "allowed: 20 to 2000" in err


def test_settings_that_contradict_each_other_are_refused(config, capsys):
    config.write_text("[ingest]\nchunk_words = 100\nchunk_overlap_words = 100\n")
    assert main(["docs"]) == 2
    assert "ingest.chunk_overlap_words (100) must be smaller than ingest.chunk_words (100)" in capsys.readouterr().err


def test_a_misspelt_setting_is_refused(config, capsys):
    config.write_text("[decoding]\ntreshold = 0.5\n")
    assert main(["docs"]) == 2
    assert "decoding.treshold" in capsys.readouterr().err


def test_a_broken_settings_file_says_which_file(config, capsys):
    config.write_text("[decoding\nk = 3\n")
    assert main(["docs"]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "not valid TOML" in err


def test_a_choice_flag_lists_the_choices(config, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ask", "q", "--mode", "sometimes"])
    err = capsys.readouterr().err
    assert "adaptive" in err and "always" in err and "never" in err


# -- the CLI is generated from the schema -----------------------------------------------------------------------


def test_global_options_work_before_or_after_the_command(config, tmp_path):
    before = settings_from(["--demo", "--store", str(tmp_path / "a"), "ask", "q"])
    after = settings_from(["ask", "q", "--demo", "--store", str(tmp_path / "a")])
    assert before == after
    assert after.store_path == tmp_path / "a"
    args = build_parser().parse_args(["ask", "--demo", "q"])
    assert args.demo is True and args.question == "q"
    assert settings_from(["docs", "--engine", "llamacpp"]).model.engine == "llamacpp"


def test_settings_flags_work_before_or_after_the_command(config):
    before = settings_from(["--max-new-tokens", "8", "--no-use-seqscore", "--dtype", "bfloat16", "ask", "q"])
    after = settings_from(["ask", "q", "--max-new-tokens", "8", "--no-use-seqscore", "--dtype", "bfloat16"])
    assert before == after
    assert (after.decoding.max_new_tokens, after.decoding.use_seqscore, after.model.dtype) == (8, False, "bfloat16")
    assert settings_from(["ask", "q"]).decoding.max_new_tokens == 200


def test_every_decoding_and_model_setting_is_a_flag_of_ask(config):
    help_text = build_parser()._subparsers._group_actions[0].choices["ask"].format_help()
    for section in ("decoding", "model"):
        for spec in option_specs(section):
            if spec.key in ("model.model", "model.engine"):
                continue  # the global --model / --engine
            assert spec.flag in help_text, spec.key
    assert "--use-seqscore" in help_text and "--no-use-seqscore" in help_text
    assert settings_from(["ask", "q", "--no-use-seqscore", "--dtype", "bfloat16"]).decoding.use_seqscore is False


def test_a_setting_knows_its_range_and_parses_typed_input():
    spec = option_spec("decoding.threshold")
    assert (spec.minimum, spec.maximum, spec.default, spec.allowed) == (0.0, 1.0, 0.2, "0 to 1")
    assert spec.parse(" 0.35 ") == 0.35
    with pytest.raises(ValueError, match="decoding.threshold must be a number"):
        spec.parse("high")
    assert option_spec("model.n_threads").parse("") is None
    assert option_spec("decoding.form").choices == ("long", "short")


# -- the settings file -------------------------------------------------------------------------------------------


def test_updating_the_file_keeps_what_the_user_wrote_and_never_pins_environment_values(config, monkeypatch):
    config.write_text('# my settings\n[model]\nmodel = "/models/selfrag-7b"\n[decoding]\nk = 3\n')
    monkeypatch.setenv("SELFRAG_DECODING__BEAM_WIDTH", "4")
    update_settings_file({"decoding": {"threshold": 0.35}})
    monkeypatch.delenv("SELFRAG_DECODING__BEAM_WIDTH")
    s = load_settings()
    assert (s.decoding.threshold, s.decoding.k, s.model.model) == (0.35, 3, "/models/selfrag-7b")
    assert s.decoding.beam_width == 2  # the environment's 4 was not written into the file
    assert "beam_width" not in config.read_text()


def test_a_session_saves_only_what_changed_and_a_demo_never_saves_the_demo_model(config):
    from selfrag_tui.application.session import Session

    session = Session(load_settings(), demo=True)
    assert "tiny-selfrag" in session.settings.model.model
    applied = session.update_settings({"decoding": {"k": 3, "threshold": 0.2}})
    assert applied.saved_to == config and not applied.model_changed
    saved = config.read_text()
    assert "k = 3" in saved and "threshold" not in saved and "tiny-selfrag" not in saved
    assert session.settings.decoding.k == 3 and "tiny-selfrag" in session.settings.model.model
    with pytest.raises(SettingsError):
        session.update_settings({"decoding": {"k": 0}})
    assert session.settings.decoding.k == 3, "a refused change applies nothing"


def test_paths_after_an_option_are_still_paths(config):
    from selfrag_tui.cli import build_parser

    parser = build_parser()
    args, extra = parser.parse_known_args(["ingest", "a.pdf", "--password", "pw", "b.md"])
    assert extra == ["b.md"]  # what argparse alone leaves over; main() puts it back with the paths


@pytest.mark.slow  # ingest loads the embedding model
def test_ingest_takes_paths_on_both_sides_of_an_option(config, tmp_path, capsys):
    missing_a, missing_b = tmp_path / "a.pdf", tmp_path / "b.md"
    code = main(["ingest", str(missing_a), "--password", "pw", str(missing_b), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["failed"] == {str(missing_a): "no such file or folder", str(missing_b): "no such file or folder"}


def test_an_unknown_option_is_still_an_error(config, capsys):
    with pytest.raises(SystemExit):
        main(["docs", "--frobnicate"])
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
