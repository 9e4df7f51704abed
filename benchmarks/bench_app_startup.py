"""Time from process start to the app's first screen (target: about one second), headless.

Each run starts a fresh Python process that builds the app as `selfrag-chat --demo` does and stops as soon as the
chat screen is mounted; the generator and the store keep loading in their workers and are not waited for. The
run also records whether torch, transformers, lancedb or sentence-transformers were already imported at that
moment (they must not be: they load in the workers).

Run: .venv/bin/python benchmarks/bench_app_startup.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 5
TARGET_S = 1.0

CHILD = r"""
import time, sys, json, asyncio
started = float(sys.argv[1])
from selfrag_tui.application.session import Session
from selfrag_tui.application.settings import resolve
from selfrag_tui.tui.app import SelfRagApp
heavy = ("torch", "transformers", "lancedb", "sentence_transformers")

async def main():
    app = SelfRagApp(Session(resolve(), demo=True), ingest_demo_docs=True)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.get_screen("chat").is_mounted:
            await pilot.pause(0.005)
        shown = time.time() - started
        loaded = [m for m in heavy if m in sys.modules]
        app.exit()
    print(json.dumps({"first_screen_s": shown, "heavy_at_first_screen": loaded}))
    sys.stdout.flush()
    import os
    os._exit(0)  # do not wait for the model workers

asyncio.run(main())
"""

# The same measurement for an empty Textual app: what any Textual app costs on this machine right now.
BARE = r"""
import time, sys, json, asyncio
started = float(sys.argv[1])
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("hello")

async def main():
    app = Bare()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0)
        shown = time.time() - started
        app.exit()
    print(json.dumps({"first_screen_s": shown, "heavy_at_first_screen": []}))

asyncio.run(main())
"""


def one_run(env: dict[str, str], code: str = CHILD) -> dict:
    result = subprocess.run([sys.executable, "-c", code, repr(time.time())], env=env, check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SELFRAG_DATA_DIR=tmp, SELFRAG_CONFIG=os.path.join(tmp, "config.toml"),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        runs, bare = [], []
        for _ in range(RUNS):  # interleaved, so both see the same load on the machine
            runs.append(one_run(env))
            bare.append(one_run(env, BARE)["first_screen_s"])
    times = [r["first_screen_s"] for r in runs]
    p50_bare = statistics.median(bare)
    heavy = sorted({m for r in runs for m in r["heavy_at_first_screen"]})
    p50 = statistics.median(times)
    print(f"first screen (process start -> chat mounted) p50 {p50 * 1000:7.1f} ms  (max {max(times) * 1000:.1f} ms)")
    print(f"empty Textual app, same machine  p50 {p50_bare * 1000:7.1f} ms")
    print(f"selfrag-chat / empty Textual app: {p50 / p50_bare:.2f}")
    print(f"heavy modules imported by then: {', '.join(heavy) or 'none'}")
    print(f"first screen / target ({TARGET_S * 1000:.0f} ms): {p50 / TARGET_S:.2f}  (<= 1.00 meets the target)")


if __name__ == "__main__":
    main()
