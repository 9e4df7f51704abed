"""Start-up time of `selfrag-chat --help` (target: well under one second; must not import torch).

Run: .venv/bin/python benchmarks/bench_cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 10
TARGET_S = 0.5


def time_command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    bare = [time_command([sys.executable, "-c", "pass"]) for _ in range(RUNS)]
    cli = [time_command([sys.executable, "-m", "selfrag_tui", "--help"]) for _ in range(RUNS)]
    torch = [time_command([sys.executable, "-c", "import torch"]) for _ in range(3)]
    p50_cli, p50_bare = statistics.median(cli), statistics.median(bare)
    print(f"python -c pass         p50 {p50_bare * 1000:7.1f} ms")
    print(f"selfrag-chat --help    p50 {p50_cli * 1000:7.1f} ms  (max {max(cli) * 1000:.1f} ms)")
    print(f"import torch (avoided) p50 {statistics.median(torch) * 1000:7.1f} ms")
    print(f"--help / target ({TARGET_S * 1000:.0f} ms): {p50_cli / TARGET_S:.2f}  (<= 1.00 meets the target)")


if __name__ == "__main__":
    main()
