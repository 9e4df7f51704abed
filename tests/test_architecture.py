"""The layering in pyproject.toml's [tool.importlinter] contracts holds: core (ingest, the decoder, the engines, the
reflection vocabulary) -> application layer -> CLI and Textual, with no upward import and no cycle among the app's
modules. import-linter reads every import statement, including those inside functions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 6 kept, 0 broken." in result.stdout


def test_an_upward_import_inside_a_function_breaks_a_contract(tmp_path):
    """The contracts catch what the runtime import test cannot see: an engine importing the decoder lazily."""
    for name in ("selfrag_tui", "ingest"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("models", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    engine = tmp_path / "selfrag_tui" / "engines" / "base.py"
    engine.write_text(engine.read_text() + "\n\ndef _late():\n    from selfrag_tui.selfrag import decoder  # noqa\n")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, '.'); from importlinter.cli import lint_imports_command;"
         " lint_imports_command()", "--no-cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "selfrag_tui.engines.base -> selfrag_tui.selfrag.decoder" in result.stdout
