"""The file formats ingest reads, and the folder patterns it uses by default.

Kept apart from the loaders so the settings schema can name the defaults without importing any reader.
"""

from __future__ import annotations

PDF_SUFFIXES = {".pdf"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdx"}
TEXT_SUFFIXES = {".txt", ".text", ".rst", ".org", ".adoc", ".asciidoc", ".asc", ""}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES

DEFAULT_INCLUDE = sorted(f"*{suffix}" for suffix in SUPPORTED_SUFFIXES if suffix)
"""Every format the loaders read (matched ignoring case); files without an extension are read too when their
bytes look like text."""
DEFAULT_EXCLUDE = [".*", "node_modules", "__pycache__"]
