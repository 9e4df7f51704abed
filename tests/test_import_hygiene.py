"""The core never imports Textual, and the CLI starts without torch (checked in fresh interpreters)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_PACKAGES = ["ingest", "selfrag_tui.selfrag", "selfrag_tui.engines"]


def core_modules() -> list[str]:
    names = []
    for package in CORE_PACKAGES:
        folder = ROOT.joinpath(*package.split("."))
        names.append(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(folder)])]
    return names


def loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('--modules--'); print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    return set(out.split("--modules--", 1)[1].split())


def test_core_does_not_import_textual():
    modules = core_modules()
    assert "selfrag_tui.selfrag.types" in modules and "ingest.types" in modules
    loaded = loaded_after("\n".join(f"import {m}" for m in modules))
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_cli_help_imports_nothing_heavy():
    loaded = loaded_after(
        "from selfrag_tui.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    heavy = {"torch", "transformers", "lancedb", "sentence_transformers", "textual", "pyarrow", "vllm"}
    assert not heavy & loaded


def test_core_imports_no_torch_at_import_time():
    loaded = loaded_after("\n".join(f"import {m}" for m in core_modules()))
    assert "torch" not in loaded and "sentence_transformers" not in loaded
