"""Convert a Hugging Face Llama checkpoint (by default the bundled tiny Self-RAG model) to GGUF with llama.cpp's own
`convert_hf_to_gguf.py`: the reference the tests hold the packaged converter to.

Users convert with the packaged converter, which works from a plain `pip install 'selfrag-chat[llamacpp]'`:

    selfrag-chat model convert PATH/TO/selfrag_llama2_7b --outtype q8_0      # or q4_k_m, f16

(`--packaged` runs that same converter from here.) llama.cpp's script is not installed with llama-cpp-python; it
ships in its source distribution under `vendor/llama.cpp/` together with the matching `gguf` writer library
(`gguf-py/`). This script finds that sdist (`--sdist`, `$LLAMA_CPP_PYTHON_SDIST`, or `.venv/sdist/` where
`make install` puts it), extracts the converter once into `.venv/llama-cpp-convert/<version>/`, and runs it:

    python scripts/convert_tiny_to_gguf.py --outfile /tmp/tiny.gguf --outtype f32

llama.cpp's converter types the Self-RAG tokens CONTROL (hidden from text output by llama.cpp's server);
`--reflection-tokens-as-text` re-types them, as the packaged converter does from the start.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SDIST_DIR = ROOT / ".venv" / "sdist"
DEFAULT_CACHE_DIR = ROOT / ".venv" / "llama-cpp-convert"
NEEDED = ("vendor/llama.cpp/convert_hf_to_gguf.py", "vendor/llama.cpp/conversion/", "vendor/llama.cpp/gguf-py/")


class ConversionError(RuntimeError):
    """The converter could not be found or failed; the message says what to do."""


def installed_llama_cpp_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("llama-cpp-python")
    except PackageNotFoundError:
        return None


def find_sdist(explicit: str | Path | None = None) -> Path:
    """The llama-cpp-python source archive to take the converter from."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("LLAMA_CPP_PYTHON_SDIST"):
        candidates.append(Path(os.environ["LLAMA_CPP_PYTHON_SDIST"]))
    version = installed_llama_cpp_version()
    if DEFAULT_SDIST_DIR.is_dir():
        pattern = f"llama_cpp_python-{version}.tar.gz" if version else "llama_cpp_python-*.tar.gz"
        candidates += sorted(DEFAULT_SDIST_DIR.glob(pattern))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pin = f"=={version}" if version else ""
    raise ConversionError(
        "llama.cpp's convert_hf_to_gguf.py comes from the llama-cpp-python source archive, which was not found. "
        f"Fetch it with: {sys.executable} -m pip download --no-deps --no-binary :all: "
        f"'llama-cpp-python{pin}' -d {DEFAULT_SDIST_DIR} (or pass --sdist PATH)."
    )


def extract_converter(sdist: Path, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Extract convert_hf_to_gguf.py, its `conversion` package and `gguf-py` once; return the script's path."""
    name = sdist.name.removesuffix(".tar.gz")
    target = cache_dir / name
    script = target / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    if script.is_file():
        return script
    tmp = cache_dir / (name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as archive:
        members = []
        for member in archive.getmembers():
            relative = member.name.split("/", 1)[1] if "/" in member.name else ""
            if any(relative == n or relative.startswith(n) for n in NEEDED) and (member.isfile() or member.isdir()):
                member.name = relative
                members.append(member)
        if not any(m.name == NEEDED[0] for m in members):
            raise ConversionError(f"{sdist} does not contain {NEEDED[0]}; use the llama-cpp-python source archive.")
        archive.extractall(tmp, members=members, filter="data")
    tmp.rename(target)
    return script


def convert(
    model_dir: str | Path,
    outfile: str | Path,
    *,
    outtype: str = "f32",
    sdist: str | Path | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    reflection_tokens_as_text: bool = False,
) -> Path:
    """Run llama.cpp's converter on `model_dir`; return the GGUF path.

    `reflection_tokens_as_text` marks the Self-RAG tokens user-defined so servers that hide control tokens
    (llama.cpp's) return them; the in-process engines work either way.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConversionError(f"{model_dir} is not a Hugging Face model folder (no config.json).")
    script = extract_converter(find_sdist(sdist), cache_dir)
    outfile = Path(outfile)
    outfile.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py that matches this converter
    result = subprocess.run(
        [sys.executable, str(script), str(model_dir), "--outfile", str(outfile), "--outtype", outtype],
        capture_output=True,
        text=True,
        env=env,
        cwd=script.parent,
    )
    if result.returncode != 0 or not outfile.is_file():
        tail = (result.stderr or result.stdout)[-2000:]
        raise ConversionError(f"convert_hf_to_gguf.py failed on {model_dir} (exit {result.returncode}):\n{tail}")
    if reflection_tokens_as_text:
        mark_reflection_tokens_as_text(outfile, script)
    return outfile


SELF_RAG_TOKENS = (
    "[No Retrieval]", "[Retrieval]", "[Continue to Use Evidence]", "[Irrelevant]", "[Relevant]", "<paragraph>",
    "</paragraph>", "[Utility:1]", "[Utility:2]", "[Utility:3]", "[Utility:4]", "[Utility:5]", "[Fully supported]",
    "[Partially supported]", "[No support / Contradictory]",
)


def mark_reflection_tokens_as_text(gguf_path: Path, script: Path) -> int:
    """Re-type the Self-RAG tokens from CONTROL to USER_DEFINED in place; return how many were changed.

    llama.cpp renders control tokens as empty text wherever special tokens are not asked for, which is what
    `llama_cpp.server` does in its completions: the decoder would see `[Retrieval]` as "". User-defined tokens are
    still parsed as single tokens in prompts and are always rendered as their text.
    """
    sys.path.insert(0, str(script.parent / "gguf-py"))
    try:
        from gguf import GGUFReader
        from gguf.constants import TokenType
    finally:
        sys.path.pop(0)
    reader = GGUFReader(gguf_path, "r+")
    tokens = reader.fields["tokenizer.ggml.tokens"]
    types = reader.fields["tokenizer.ggml.token_type"]
    changed = 0
    for index, part in enumerate(tokens.data):
        text = bytes(tokens.parts[part]).decode("utf-8", errors="replace")
        if text in SELF_RAG_TOKENS:
            type_part = types.parts[types.data[index]]
            if int(type_part[0]) != int(TokenType.USER_DEFINED):
                type_part[0] = int(TokenType.USER_DEFINED)
                changed += 1
    del reader  # flushes the memory map
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=str(ROOT / "selfrag_tui" / "models" / "tiny-selfrag"))
    parser.add_argument("--outfile", required=True, help="GGUF file to write")
    parser.add_argument("--outtype", default="f32", choices=["f32", "f16", "bf16", "q8_0", "q5_k_m", "q4_k_m"],
                        help="q5_k_m and q4_k_m need --packaged")
    parser.add_argument("--packaged", action="store_true",
                        help="use the converter that ships in the package (selfrag-chat model convert)")
    parser.add_argument("--sdist", help="llama-cpp-python source archive (.tar.gz)")
    parser.add_argument(
        "--reflection-tokens-as-text",
        action="store_true",
        help="mark the Self-RAG tokens user-defined so llama.cpp's server returns them (it hides control tokens)",
    )
    args = parser.parse_args(argv)
    if args.packaged:
        sys.path.insert(0, str(ROOT))
        from selfrag_tui.engines.base import EngineError
        from selfrag_tui.engines.gguf_convert import convert as packaged_convert

        try:
            path = packaged_convert(args.model, args.outfile, outtype=args.outtype)
        except EngineError as exc:
            print(f"convert_tiny_to_gguf: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    if args.outtype in ("q5_k_m", "q4_k_m"):
        parser.error(f"--outtype {args.outtype} needs --packaged (llama.cpp's script writes f32, f16, bf16, q8_0)")
    try:
        path = convert(
            args.model,
            args.outfile,
            outtype=args.outtype,
            sdist=args.sdist,
            reflection_tokens_as_text=args.reflection_tokens_as_text,
        )
    except ConversionError as exc:
        print(f"convert_tiny_to_gguf: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
