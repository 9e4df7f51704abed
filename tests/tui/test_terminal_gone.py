"""The app in a real pseudo-terminal: when the terminal goes away without a hang-up signal reaching the app (its
window closed while `make run` led the terminal's session), the app quits instead of spinning on the dead terminal."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

pytestmark = pytest.mark.slow


def test_the_app_quits_when_its_terminal_goes_away(tmp_path):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", SELFRAG_DATA_DIR=str(tmp_path / "data"),
               SELFRAG_CONFIG=str(tmp_path / "config.toml"))
    # Not a session of its own and not the terminal's controlling process: closing the terminal sends it no signal.
    app = subprocess.Popen([sys.executable, "-m", "selfrag_tui", "--demo"], stdin=slave, stdout=slave, stderr=slave,
                           env=env, close_fds=True)
    os.close(slave)
    drawn, deadline = b"", time.monotonic() + 120
    try:
        while b"Ask about your documents" not in drawn:  # the prompt placeholder: the window is up
            assert app.poll() is None, drawn[-2000:]
            assert time.monotonic() < deadline, "the app did not draw its window"
            if select.select([master], [], [], 0.5)[0]:
                drawn += os.read(master, 65536)
    finally:
        os.close(master)  # the terminal goes away
    try:
        code = app.wait(timeout=30)
    except subprocess.TimeoutExpired:
        app.kill()
        pytest.fail("the app kept running after its terminal went away")
    assert code == 129
