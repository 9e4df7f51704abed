"""The retrieval decision of a turn, shown before the answer: retrieved or not, p against threshold, mode."""

from __future__ import annotations

from textual.widgets import Static

from selfrag_tui.selfrag.types import RetrievalDecision
from selfrag_tui.tui.markers import badge


class RetrievalBadge(Static):
    def __init__(self, decision: RetrievalDecision | None = None, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.decision = decision
        if decision is not None:
            self.show(decision)
        else:
            self.display = False

    def show(self, decision: RetrievalDecision) -> None:
        self.decision = decision
        self.set_class(decision.retrieve, "-retrieved")
        self.update(badge(decision))
        self.display = True
