"""The Self-RAG inference algorithm (SELFRAG_SPEC): pure Python over an engine interface.

Nothing here imports torch, vLLM or Textual at module import time.
"""
