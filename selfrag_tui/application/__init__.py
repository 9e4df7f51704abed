"""The application layer: the one place that owns settings, the document store, the embedder, the engine and
its loading, ingest jobs, the decoder, history and export (`Session`). It imports no Textual: the CLI commands
and the Textual app are two thin faces over it."""
