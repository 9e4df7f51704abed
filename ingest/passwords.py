"""Passwords for encrypted PDFs, per file: a TOML file maps paths or patterns to passwords.

    # ~/.config/selfrag-chat/pdf-passwords.toml  (chmod 600)
    "statements/2024-03.pdf" = "first secret"     # relative to this file's folder
    "/home/me/scans/tax.pdf" = "second secret"    # absolute
    "bank/*.pdf" = "third secret"                 # a pattern: * and ? within a folder, ** across folders
    "*" = "tried for every other encrypted PDF"

An exact path wins over a pattern; among patterns the first match in the file wins. Passwords are kept in memory
only, never written to the store, a log or a message: errors name the file and the line.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import PasswordFileError


@dataclass
class PasswordBook:
    """Looks up the password for one PDF. `default` (from `--password`) applies where no entry matches."""

    exact: dict[str, str] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    default: str | None = None
    warnings: list[str] = field(default_factory=list)
    """Things to tell the user about the file (e.g. other users can read it); never a password."""

    @classmethod
    def load(cls, path: str | Path, *, default: str | None = None) -> "PasswordBook":
        import tomllib

        path = Path(path).expanduser()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise PasswordFileError(f"password file {path} does not exist; check ingest.password_file") from None
        except IsADirectoryError:
            raise PasswordFileError(f"password file {path} is a folder, not a TOML file") from None
        except OSError as exc:
            raise PasswordFileError(f"password file {path} cannot be read: {exc.strerror or exc}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise PasswordFileError(f"password file {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            # Only where the decoder stopped is shown: its message could quote a password in a future version.
            found = re.search(r"line (\d+), column (\d+)", str(exc))
            where = f" (line {found[1]}, column {found[2]})" if found else ""
            raise PasswordFileError(
                f"password file {path} is not valid TOML{where}: write one `\"path or pattern\" = \"password\"` "
                "per line") from None
        book = cls(default=default)
        base = path.resolve().parent
        for key, value in data.items():
            if not isinstance(value, str):
                raise PasswordFileError(
                    f"password file {path}: the entry for {key!r} must be a quoted string (\"{key}\" = \"...\")")
            target = Path(key).expanduser()
            full = target if target.is_absolute() else base / target
            if any(ch in key for ch in "*?["):
                book.patterns.append((_pattern(str(full)), value))
            else:
                book.exact[str(full.resolve())] = value
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                book.warnings.append(f"password file {path} can be read by other users; run `chmod 600 {path}`")
        except OSError:
            pass
        return book

    def for_path(self, path: str | Path) -> str | None:
        full = str(Path(path).resolve())
        if full in self.exact:
            return self.exact[full]
        for pattern, password in self.patterns:
            if pattern.fullmatch(full):
                return password
        return self.default

    def __repr__(self) -> str:  # never show a password, e.g. in a traceback's locals
        return f"PasswordBook({len(self.exact)} paths, {len(self.patterns)} patterns, default={'set' if self.default else 'none'})"


def _pattern(text: str) -> re.Pattern[str]:
    """`*` and `?` within one path part, `**` across parts, `[abc]` as in the shell."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if text.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = text.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                out.append("[" + text[i + 1:end].replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out))
