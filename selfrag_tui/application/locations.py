"""Where selfrag-chat keeps its files. Every path comes from here.

`SELFRAG_CONFIG` overrides the settings file and `SELFRAG_DATA_DIR` the data folder (tests use both).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "selfrag-chat"


def config_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP_NAME)


def config_file() -> Path:
    override = os.environ.get("SELFRAG_CONFIG")
    return Path(override).expanduser() if override else config_dir() / "config.toml"


def data_dir() -> Path:
    override = os.environ.get("SELFRAG_DATA_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME)


def default_store_path() -> Path:
    return data_dir() / "store"


def demo_store_path() -> Path:
    """The store of the bundled sample documents, used by `--demo`."""
    return data_dir() / "demo-store"


def history_db_path() -> Path:
    return data_dir() / "history.sqlite3"


def package_dir() -> Path:
    """The installed `selfrag_tui` package folder."""
    return Path(__file__).resolve().parents[1]


def demo_model_path() -> Path:
    """The tiny Self-RAG model shipped with the package."""
    return package_dir() / "models" / "tiny-selfrag"


def sample_docs_path() -> Path:
    """sample_docs/ of a source checkout (the demo corpus)."""
    return package_dir().parent / "sample_docs"
