"""Command palette entries: one per action of the action table, run where the action lives."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from selfrag_tui.tui.actions import ACTIONS, ActionSpec

_SCOPE_PREFIX = {"app": "", "chat": "Chat: ", "library": "Library: ", "settings": "Settings: ",
                 "history": "History: "}


class SelfRagCommands(Provider):
    """Every action by name, so each is discoverable without knowing its key."""

    def _entries(self) -> list[tuple[str, ActionSpec]]:
        return [(f"{_SCOPE_PREFIX[spec.scope]}{spec.title}", spec) for spec in ACTIONS if spec.id != "quit"]

    async def _run(self, spec: ActionSpec) -> None:
        app = self.app
        if spec.scope == "app":
            await app.run_action(spec.action)
            return
        await app.run_action(f"show_screen({spec.scope!r})")
        await app.run_action(spec.action, app.get_screen(spec.scope))

    async def discover(self) -> Hits:
        for name, spec in self._entries():
            yield DiscoveryHit(name, partial(self._run, spec), help=spec.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, spec in self._entries():
            score = max(matcher.match(name), matcher.match(spec.help) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self._run, spec), help=spec.help)
