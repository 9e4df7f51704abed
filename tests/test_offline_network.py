"""Nothing leaves the machine: ingest, `--demo ask` and the app's start run with networking unavailable to the
process and open no connection.

The commands run in a child process whose environment does NOT switch the Hugging Face libraries offline and
whose Hugging Face cache is empty, so only the program's own switch (`application.offline.stay_offline`, called at
CLI start) keeps them from the network. Two fences, both real:

- a `sitecustomize` module on the child's path makes every IPv4/IPv6 socket connect (and name lookup) fail and
  writes it to a log, so an attempt is seen even where it would have been retried or swallowed;
- where this user may create a network namespace (`unshare -n`, e.g. as root), the child also runs in one with
  no network interface at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selfrag_tui.application.locations import sample_docs_path

pytestmark = pytest.mark.slow

SITECUSTOMIZE = textwrap.dedent('''
    import os, socket

    _log = os.environ["SELFRAG_TEST_NETWORK_LOG"]

    def _blocked(what, target):
        with open(_log, "a", encoding="utf-8") as out:
            out.write(f"{what} {target!r}\\n")
        raise OSError(f"network blocked by the test: {what} {target!r}")

    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _blocked("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _blocked("connect_ex", address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        _blocked("getaddrinfo", host)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
''')

DRIVER = textwrap.dedent('''
    import json, os, sys

    results = {}
    from selfrag_tui.cli import main

    results["ingest"] = main(["ingest", sys.argv[1]])
    results["offline_after_cli_start"] = os.environ.get("HF_HUB_OFFLINE")
    results["ask"] = main(["--demo", "ask", "Can you tell me the difference between llamas and alpacas?", "--json"])

    from selfrag_tui.tui import app as tui_app

    real_run = tui_app.SelfRagApp.run
    seen = {}

    def run_headless(self, *args, **kwargs):
        async def until_the_model_is_ready(pilot):
            for _ in range(1200):
                await pilot.pause(0.05)
                if self.session.engine is not None or self.session.generator_failed:
                    break
            seen["engine"] = self.session.engine is not None
            seen["failed"] = self.session.generator_failed
            self.exit(0)
        return real_run(self, headless=True, auto_pilot=until_the_model_is_ready)

    tui_app.SelfRagApp.run = run_headless
    results["app"] = main(["--demo"])
    results["app_seen"] = seen
    print("RESULTS " + json.dumps(results))
''')


def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0


def test_ingest_ask_and_the_app_work_with_no_network_and_open_no_connection(tmp_path):
    if not sample_docs_path().is_dir():
        pytest.skip("sample_docs/ is only in a source checkout")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    log = tmp_path / "network.log"
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "llamas.md").write_text("# Llamas\n\nLlamas are larger than alpacas and are kept as pack animals.\n",
                                    encoding="utf-8")
    (tmp_path / "config.toml").write_text("", encoding="utf-8")

    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE") and not k.startswith("SELFRAG_")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1])]),
        "SELFRAG_TEST_NETWORK_LOG": str(log),
        "SELFRAG_DATA_DIR": str(tmp_path / "data"),
        "SELFRAG_CONFIG": str(tmp_path / "config.toml"),
        "HF_HOME": str(tmp_path / "empty-hf-home"),  # nothing cached: a load by hub name would have to download
        "OMP_NUM_THREADS": "1",
        "TERM": "xterm-256color",
    })
    command = [sys.executable, str(driver), str(docs)]
    namespaced = _can_unshare()
    if namespaced:
        command = [shutil.which("unshare"), "-n", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(lines[-1].removeprefix("RESULTS "))

    assert results["ingest"] == 0
    assert results["offline_after_cli_start"] == "1"  # set by the program, not by this test
    assert results["ask"] == 0 and "alpaca" in done.stdout.split("RESULTS ")[0].lower()  # the answer was printed
    assert results["app"] == 0 and results["app_seen"] == {"engine": True, "failed": None}
    assert not log.exists(), f"network use: {log.read_text()}"


def test_the_fence_sees_a_hub_request_and_the_programs_switch_prevents_it(tmp_path):
    """The same child set-up catches a real huggingface_hub request, and `stay_offline` stops it before a socket."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    probe = textwrap.dedent('''
        import sys
        if sys.argv[1] == "switched":
            from selfrag_tui.application.offline import stay_offline
            stay_offline()
        elif sys.argv[1] == "session":  # a library user's Session, without the CLI
            from selfrag_tui.application.session import Session
            from selfrag_tui.application.settings import resolve
            Session(resolve(read_file=False, read_env=False))
        from huggingface_hub import HfApi
        try:
            HfApi().model_info("selfrag/selfrag_llama2_7b")
        except Exception as exc:
            print(type(exc).__name__)
    ''')
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update({"PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[1])]),
                "HF_HOME": str(tmp_path / "hf"), "HF_HUB_ETAG_TIMEOUT": "1"})
    outcomes = {}
    for mode in ("plain", "switched", "session"):
        log = tmp_path / f"{mode}.log"
        env["SELFRAG_TEST_NETWORK_LOG"] = str(log)
        done = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, env=env,
                              timeout=120)
        outcomes[mode] = (done.stdout.strip(), log.exists())
    assert outcomes["plain"][1] is True  # the fence saw the attempt
    assert outcomes["switched"] == ("OfflineModeIsEnabled", False)
    assert outcomes["session"] == ("OfflineModeIsEnabled", False)
