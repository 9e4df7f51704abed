"""Nothing leaves the machine unless the user asked for a download.

The Hugging Face libraries (transformers, sentence-transformers, huggingface_hub) reach for the hub whenever a
name is not a local folder: to resolve a revision, to check for a newer file, to download a missing one. The
program therefore switches them offline itself, at start (`stay_offline`), instead of relying on the user's
environment; every model, tokenizer and embedder load then reads only local files, and a missing file is an
error that says how to get it. The one place that lifts it is an explicit download (`downloads_allowed`), and
only for as long as that download runs.

huggingface_hub reads `HF_HUB_OFFLINE` once, at import; its module constant is set as well so that the switch
holds whether or not the library was imported already.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_download_lock = threading.RLock()
_downloads_running = 0
_saved: tuple[dict[str, str | None], bool] = ({}, True)  # the environment and hub switch before the first download


def _set_hub_offline(value: bool) -> None:
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = value


def stay_offline() -> None:
    """Switch every Hugging Face library of this process to local files only (unless a download is running)."""
    with _download_lock:
        if _downloads_running:
            return
        for name in OFFLINE_VARIABLES:
            os.environ[name] = "1"
        _set_hub_offline(True)


def is_offline() -> bool:
    """Whether hub requests of this process are switched off now."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        return bool(constants.HF_HUB_OFFLINE)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def downloads_allowed() -> Iterator[None]:
    """Let huggingface_hub reach the hub inside this block only (an explicit download); offline again after."""
    global _downloads_running, _saved
    import huggingface_hub.constants as constants

    with _download_lock:
        if _downloads_running == 0:
            _saved = ({name: os.environ.get(name) for name in OFFLINE_VARIABLES}, bool(constants.HF_HUB_OFFLINE))
            for name in OFFLINE_VARIABLES:
                os.environ.pop(name, None)
            constants.HF_HUB_OFFLINE = False
        _downloads_running += 1
    try:
        yield
    finally:
        with _download_lock:
            _downloads_running -= 1
            if _downloads_running == 0:
                environment, hub_offline = _saved
                for name, value in environment.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                constants.HF_HUB_OFFLINE = hub_offline
