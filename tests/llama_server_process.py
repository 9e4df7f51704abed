"""A real llama.cpp OpenAI-compatible server process on loopback, for the server-engine tests."""

from __future__ import annotations

import os


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_llama_server(gguf_path, log_path):
    """Start `python -m llama_cpp.server` on a free loopback port; return (process, base_url) once it answers."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--n_batch", "512",
         # An f32 attention cache, so scores match the transformers engine (f16 moves them by up to ~0.01).
         "--type_k", "0", "--type_v", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"llama_cpp.server exited early: {open(log_path).read()[-2000:]}")
        try:
            urllib.request.urlopen(base_url + "/models", timeout=1).read()
            return process, base_url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"llama_cpp.server did not answer within 60 s: {open(log_path).read()[-2000:]}")


def stop_llama_server(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except Exception:  # noqa: BLE001
        process.kill()
