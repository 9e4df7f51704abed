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

from selfrag_tui.application import events as ev
from selfrag_tui.tui import messages as msg
from selfrag_tui.tui.actions import bindings_for
from selfrag_tui.tui.markers import fit_path
from selfrag_tui.application.verdicts import clean_text
from selfrag_tui.tui.widgets.path_input import PathInput
from selfrag_tui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ingest.types import DocumentRecord, IngestProgress, IngestReport
    from selfrag_tui.application.session import Session

FILE_WIDTH = 30
"""Cells of the table's File column: a path cut to fit keeps its file name (`markers.fit_path`)."""


class LibraryScreen(Screen):
    BINDINGS = bindings_for("library")

    @dataclass
    class DocumentsLoaded(Message):
        documents: list["DocumentRecord"]
        error: str | None = None

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session
        self.documents: list["DocumentRecord"] = []

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
        table.add_column("File", key="file", width=FILE_WIDTH)
        table.add_column("Status", key="status", width=8)
        table.add_column("Pages", key="pages", width=5)
        table.add_column("Passages", key="chunks", width=8)
        table.add_column("Problem", key="error")
        self.query_one("#tree").display = False
        self.query_one("#ingest-box").display = self.session.ingest_running
        if self.session.store is not None:
            self._load_documents()

    # -- the session's events (forwarded by the app) ---------------------------------------------------------

    @on(msg.SessionEventMessage)
    def _session_event(self, message: msg.SessionEventMessage) -> None:
        event = message.event
        if isinstance(event, ev.IngestProgressed):
            self.show_progress(event.progress)
        elif isinstance(event, ev.IngestFinished):
            self.ingest_done(event.report, event.error)
        elif isinstance(event, ev.DocumentsChanged):
            self._load_documents()

    # -- documents -------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="documents", exit_on_error=False)
    def _load_documents(self) -> None:
        store = self.session.store
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
                Text(clean_text(fit_path(record.path, FILE_WIDTH)), no_wrap=True, overflow="ellipsis"),
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

    @on(DataTable.RowSelected, "#documents")
    def _row_selected(self) -> None:
        record = self.selected_document()
        if record is not None and _needs_password(record):
            self.action_unlock_document()

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
        shown = Text(f"{Path(record.path).name}: ", style="bold") + Text(clean_text(problem))
        if _needs_password(record):
            shown.append("  Press Enter to type its password.", style="bold yellow")
        label.update(shown)

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
        if self.session.ingest_running:
            self.notify("An ingest is already running; wait for it or press Esc to stop it.", title="Ingest busy",
                        severity="warning")
            return False
        self.post_message(msg.StartIngest([path], what=path.name or str(path)))
        self.query_one("#path", PathInput).value = ""
        return True

    @on(DirectoryTree.FileSelected, "#tree")
    @on(DirectoryTree.DirectorySelected, "#tree")
    def _tree_selected(self, event: DirectoryTree.FileSelected | DirectoryTree.DirectorySelected) -> None:
        field = self.query_one("#path", PathInput)
        field.value = str(event.path)
        field.cursor_position = len(field.value)
        if isinstance(event, DirectoryTree.FileSelected):
            field.focus()

    # -- progress --------------------------------------------------------------------------------------------

    def show_progress(self, progress: "IngestProgress") -> None:
        from selfrag_tui.tui.markers import format_eta

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
        if progress.note:
            words.append(f" · {clean_text(progress.note)}")
        if progress.current_path:
            words.append("\n")
            words.append(clean_text(progress.current_path), style="dim")
        words.append("   Esc stops", style="dim")
        self.query_one("#ingest-label", Static).update(words)

    def ingest_done(self, report: "IngestReport | None", error: str | None) -> None:
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
        if report.skipped:
            summary.append(f", {len(report.skipped)} skipped (not a format read here, excluded or not a file)")
        if report.warnings:
            summary.append(f", {len(report.warnings)} with warnings", style="yellow")
        locked = [path for path, reason in report.failed.items() if _is_password_problem(reason)]
        if locked:
            summary.append(f"\n{len(locked)} encrypted PDF(s) need a password: select one in the table and press "
                           "Enter to type it.", style="yellow")
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
        self.post_message(msg.RemoveDocuments([record.path]))

    def action_resync(self) -> None:
        """Re-read every known document: changed files are re-embedded, vanished ones dropped."""
        if not self.documents:
            self.notify("The library is empty; add files first.", severity="warning")
            return
        self.post_message(msg.StartIngest([record.path for record in self.documents], sync=True,
                                          what=f"{len(self.documents)} document(s)"))

    def action_unlock_document(self) -> None:
        """Ask for the selected encrypted PDF's password, then read that one file again with it."""
        from selfrag_tui.tui.screens.password import PasswordScreen

        record = self.selected_document()
        if record is None or not _needs_password(record):
            self.notify("Select a PDF whose problem says it needs a password (or a wrong one was given).",
                        severity="warning")
            return
        if self.session.ingest_running:
            self.notify("An ingest is already running; wait for it or press Esc to stop it.", title="Ingest busy",
                        severity="warning")
            return
        path = record.path

        def read_again(password: str | None) -> None:
            if password:
                self.post_message(msg.StartIngest([path], what=Path(path).name, password=password))

        self.app.push_screen(PasswordScreen(path, record.error or ""), read_again)

    def action_cancel_ingest(self) -> None:
        self.post_message(msg.CancelIngest())



def _is_password_problem(reason: str) -> bool:
    return "needs a password" in reason or "wrong password" in reason


def _needs_password(record: "DocumentRecord") -> bool:
    return record.status == "failed" and _is_password_problem(record.error or "")
