"""One answer segment with its inline critique markers.

Focusable: focusing (or clicking) a segment posts `Selected`, which the chat screen answers by highlighting the
segment's passage in the source panel and showing the numbers behind the markers. Hovering shows them too.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.widgets import Static

from selfrag_tui.selfrag.types import Segment
from selfrag_tui.tui.markers import MarkerStyle, critique_details, segment_text


class SegmentView(Static, can_focus=True):
    @dataclass
    class Selected(Message):
        """The user moved to a segment."""

        segment_view: "SegmentView"

        @property
        def segment(self) -> Segment:
            return self.segment_view.segment

    def __init__(self, segment: Segment, turn_key: str, marker_style: MarkerStyle = "full", **kwargs) -> None:
        super().__init__("", **kwargs)
        self.segment = segment
        self.turn_key = turn_key
        self.marker_style: MarkerStyle = marker_style

    def on_mount(self) -> None:
        self.tooltip = self.details()
        self.set_marker_style(self.marker_style)

    def details(self):
        segment = self.segment
        return critique_details(segment.critique, score=segment.score, passage=segment.passage,
                                citation=segment.citation)

    def set_marker_style(self, style: MarkerStyle) -> None:
        self.marker_style = style
        self.update(segment_text(self.segment, style))

    def on_focus(self) -> None:
        self.post_message(self.Selected(self))

    def on_click(self) -> None:
        self.focus()
