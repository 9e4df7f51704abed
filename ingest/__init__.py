"""The document store: load PDFs and notes, chunk, embed, and search them in LanceDB.

Knows nothing of generators or of the UI.
"""
