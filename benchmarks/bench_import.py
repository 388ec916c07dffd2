"""Start-up cost: `import ssld_zoo` and `ssld-zoo list` against `python -c pass` (and `import timm` for scale).

    python benchmarks/bench_import.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import ssld_zoo'": [sys.executable, "-c", "import ssld_zoo"],
    "ssld-zoo list": [sys.executable, "-m", "ssld_zoo", "list"],
    "ssld-zoo info resnet50d_ssld": [sys.executable, "-m", "ssld_zoo", "info", "resnet50d_ssld"],
    "python -c 'import timm' (for scale)": [sys.executable, "-c", "import timm"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(rounds):  # interleaved
        for label, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[label].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    print(f"median wall time of {rounds} interleaved runs")
    for label, values in times.items():
        ms = statistics.median(values) * 1e3
        print(f"  {label:<40} {ms:8.1f} ms  ratio {ms / 1e3 / base:5.2f}x")


if __name__ == "__main__":
    main()
