"""The documents in the store, and adding, removing and re-syncing them.

Ingest runs in the app's thread worker: this screen only shows its progress (a bar, the phase, the file, an
ETA) and can be left at any time; the chat stays usable while documents are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, DirectoryTree, Footer, ProgressBar, Static

from selfrag_tui.tui.actions import bindings_for
from selfrag_tui.tui.markers import display_path
from selfrag_tui.verdicts import clean_text
from selfrag_tui.tui.widgets.path_input import PathInput
from selfrag_tui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ingest.types import DocumentRecord, IngestProgress, IngestReport
    from selfrag_tui.tui.app import SelfRagApp


class LibraryScreen(Screen):
    BINDINGS = bindings_for("library")

    @dataclass
    class DocumentsLoaded(Message):
        documents: list["DocumentRecord"]
        error: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.documents: list["DocumentRecord"] = []
        self._pending_progress: "IngestProgress | None" = None

    @property
    def selfrag(self) -> "SelfRagApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Vertical(id="library-body"):
            yield Static(Text("Add files or folders (PDF, Markdown, text). Tab completes the path; Enter adds it.",
                              style="dim"), id="library-hint")
            with Horizontal(id="add-row"):
                yield PathInput(placeholder="~/notes or ~/papers/paper.pdf", id="path")
                yield Button("Add", id="add", variant="primary")
            yield DirectoryTree(str(Path.home()), id="tree")
            with Vertical(id="ingest-box"):
                yield Static("", id="ingest-label")
                yield ProgressBar(total=None, show_eta=False, id="ingest-bar")
            yield DataTable(id="documents", cursor_type="row", zebra_stripes=True)
            yield Static("", id="document-error")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#documents", DataTable)
        table.add_column("Document", key="title", width=34)
        table.add_column("File", key="file", width=30)
        table.add_column("Status", key="status", width=8)
        table.add_column("Pages", key="pages", width=5)
        table.add_column("Passages", key="chunks", width=8)
        table.add_column("Problem", key="error")
        self.query_one("#tree").display = False
        self.query_one("#ingest-box").display = self.selfrag.ingest_running
        if self._pending_progress is not None:
            self.call_after_refresh(self.show_progress, self._pending_progress)
        if self.selfrag.store is not None:
            self._load_documents()

    # -- documents -------------------------------------------------------------------------------------------

    def reload_documents(self) -> None:
        if self.is_mounted and self.selfrag.store is not None:
            self._load_documents()

    @work(thread=True, exclusive=True, group="documents", exit_on_error=False)
    def _load_documents(self) -> None:
        store = self.selfrag.store
        if store is None:
            return
        try:
            documents = store.documents()
        except Exception as exc:
            self.post_message(self.DocumentsLoaded([], f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.DocumentsLoaded(sorted(documents, key=lambda d: d.path)))

    @on(DocumentsLoaded)
    def _documents_loaded(self, message: DocumentsLoaded) -> None:
        if message.error is not None:
            self.notify(message.error, title="Could not list the documents", severity="error", markup=False)
            return
        self.documents = message.documents
        table = self.query_one("#documents", DataTable)
        selected = table.cursor_row
        table.clear()
        for record in message.documents:
            ok = record.status == "ok"
            problem = record.error or "; ".join(getattr(record, "warnings", ()) or ())
            table.add_row(
                Text(clean_text(record.title or Path(record.path).name), no_wrap=True, overflow="ellipsis"),
                Text(clean_text(display_path(record.path)), no_wrap=True, overflow="ellipsis"),
                Text("✓ ok" if ok else "✗ failed", style="green" if ok else "bold red"),
                Text(str(record.pages) if record.pages else "–", justify="right"),
                Text(str(record.chunks), justify="right"),
                Text(clean_text(problem or ""), style="red" if not ok else "yellow", no_wrap=True,
                     overflow="ellipsis"),
                key=record.path,
            )
        if message.documents:
            table.move_cursor(row=min(selected, len(message.documents) - 1))
        self._show_selected_problem()

    @on(DataTable.RowHighlighted, "#documents")
    def _row_highlighted(self) -> None:
        self._show_selected_problem()

    def _show_selected_problem(self) -> None:
        record = self.selected_document()
        label = self.query_one("#document-error", Static)
        problem = None if record is None else record.error or "; ".join(getattr(record, "warnings", ()) or ())
        if not problem:
            label.update("")
            label.display = False
            return
        label.display = True
        label.update(Text(f"{Path(record.path).name}: ", style="bold") + Text(clean_text(problem)))

    def selected_document(self) -> "DocumentRecord | None":
        table = self.query_one("#documents", DataTable)
        if not self.documents or table.cursor_row < 0 or table.cursor_row >= len(self.documents):
            return None
        return self.documents[table.cursor_row]

    # -- adding ----------------------------------------------------------------------------------------------

    @on(PathInput.Submitted, "#path")
    @on(Button.Pressed, "#add")
    def _add_from_input(self) -> None:
        field = self.query_one("#path", PathInput)
        self.add_path(field.value)

    def add_path(self, raw: str) -> bool:
        raw = raw.strip()
        if not raw:
            self.notify("Type a file or folder path first.", severity="warning")
            return False
        path = Path(raw).expanduser()
        if not path.exists():
            self.notify(f"{path} does not exist. Check the path (Tab completes names).", title="Nothing to add",
                        severity="error", markup=False)
            return False
        if self.selfrag.start_ingest([path], what=path.name or str(path)):
            self.query_one("#path", PathInput).value = ""
            return True
        return False

    @on(DirectoryTree.FileSelected, "#tree")
    @on(DirectoryTree.DirectorySelected, "#tree")
    def _tree_selected(self, event: DirectoryTree.FileSelected | DirectoryTree.DirectorySelected) -> None:
        field = self.query_one("#path", PathInput)
        field.value = str(event.path)
        field.cursor_position = len(field.value)
        if isinstance(event, DirectoryTree.FileSelected):
            field.focus()

    # -- progress (called by the app) ------------------------------------------------------------------------

    def show_progress(self, progress: "IngestProgress") -> None:
        if not self.is_mounted:
            self._pending_progress = progress
            return
        from selfrag_tui.tui.app import format_eta

        box = self.query_one("#ingest-box")
        box.display = True
        bar = self.query_one("#ingest-bar", ProgressBar)
        bar.update(total=max(progress.documents_total, 1), progress=progress.documents_done)
        words = Text()
        words.append(f"{progress.phase.capitalize()} ", style="bold")
        words.append(f"{progress.documents_done}/{progress.documents_total} file(s)")
        words.append(f" · {progress.pages_done} page(s) · {progress.chunks_done} passage(s)")
        if progress.eta_seconds is not None and progress.documents_done < progress.documents_total:
            words.append(f" · ETA {format_eta(progress.eta_seconds)}")
        if progress.current_path:
            words.append("\n")
            words.append(clean_text(progress.current_path), style="dim")
        words.append("   Esc stops", style="dim")
        self.query_one("#ingest-label", Static).update(words)

    def ingest_done(self, report: "IngestReport | None", error: str | None) -> None:
        self._pending_progress = None
        if not self.is_mounted:
            return
        box = self.query_one("#ingest-box")
        label = self.query_one("#ingest-label", Static)
        if error is not None:
            label.update(Text("Ingest failed: ", style="bold red") + Text(clean_text(error)))
            return
        if report is None:
            box.display = False
            return
        summary = Text("Stopped: " if report.cancelled else "Done: ", style="bold")
        summary.append(
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
            f"{len(report.removed)} removed, {len(report.failed)} failed"
        )
        label.update(summary)
        bar = self.query_one("#ingest-bar", ProgressBar)
        if not report.cancelled:
            bar.update(total=1, progress=1)
        box.display = True

    # -- actions ---------------------------------------------------------------------------------------------

    def action_focus_path(self) -> None:
        self.query_one("#path", PathInput).focus()

    def action_toggle_tree(self) -> None:
        tree = self.query_one("#tree", DirectoryTree)
        tree.display = not tree.display
        if tree.display:
            tree.focus()

    def action_remove_document(self) -> None:
        record = self.selected_document()
        if record is None:
            self.notify("Select a document in the table first.", severity="warning")
            return
        if self.selfrag.ingest_running:
            self.notify("Wait for the running ingest to finish (or stop it with Esc) before removing documents.",
                        severity="warning")
            return
        self._remove([record.path])

    @work(thread=True, group="remove", exit_on_error=False)
    def _remove(self, paths: list[str]) -> None:
        store = self.selfrag.store
        if store is None:
            return
        try:
            removed = store.remove(paths)
        except Exception as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Could not remove the document",
                                      severity="error", markup=False)
            return
        names = ", ".join(Path(p).name for p in removed) or "nothing"
        self.app.call_from_thread(self.notify, f"Removed {names}.", markup=False)
        self.app.post_message(self.selfrag.DocumentsChanged())
        self.app.call_from_thread(self.selfrag._refresh_store_status)

    def action_resync(self) -> None:
        """Re-read every known document: changed files are re-embedded, vanished ones dropped."""
        if not self.documents:
            self.notify("The library is empty; add files first.", severity="warning")
            return
        self.selfrag.start_ingest([record.path for record in self.documents], sync=True,
                                  what=f"{len(self.documents)} document(s)")

    def action_cancel_ingest(self) -> None:
        if self.selfrag.cancel_ingest():
            self.notify("Stopping the ingest after the current batch; what is done so far is kept.")

