"""Conversion cost: `ssld_zoo.convert.convert_to_folder` on a ResNet50_vd-sized `.pdparams` against a plain read and
write of the same bytes, measured side by side; plus the peak memory of each as a multiple of the file size.

    python benchmarks/bench_convert.py [--rounds 5]

The PaddleClas file is a real `paddle.save` of PaddleClas ResNet50_vd with random weights (needs the `paddle` extra
and `pip install --no-deps paddleclas`, as for the tests). Each measurement runs in a fresh process with the imports
already done (a long-lived process, as in `create(..., pretrained=True)` on first use); peak memory is the rise of the
process's resident-set high-water mark (`VmHWM`, reset through `/proc/self/clear_refs`) above its size before the
work. Goals (issue 3): time ≤ 3× the plain copy, peak memory ≤ 2.5× the file.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, os, sys, time
from pathlib import Path
mode, src, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
if mode == "convert":
    from ssld_zoo.convert import convert_to_folder, supported_models
    from ssld_zoo.convert._base import target_shapes
    supported_models()
    import timm, torch  # noqa: F401  (imports are not what is measured)

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
before = status("VmRSS:")
start = time.perf_counter()
if mode == "convert":
    convert_to_folder(src, "resnet50d_ssld", out)
else:
    data = src.read_bytes()
    with open(out / "copy.bin", "wb") as f:
        f.write(data)
        f.flush()
    del data
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_bytes": status("VmHWM:") - before}))
"""


def make_pdparams(path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import paddle
    from paddle_oracle import Case, build_paddle_model
    model = build_paddle_model(Case("resnet50d_ssld", "legendary_models.resnet", "ResNet50_vd", stages=[]))
    paddle.save(model.state_dict(), str(path))


def measure(mode: str, src: Path, work: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    result = subprocess.run([sys.executable, "-c", WORKER, mode, str(src), str(out)], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "ResNet50_vd_ssld_pretrained.pdparams"
        make_pdparams(src)
        size = src.stat().st_size
        runs: dict[str, list[dict[str, float]]] = {"copy": [], "convert": []}
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
            for mode in runs:
                runs[mode].append(measure(mode, src, work))
    seconds = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    peak = {m: max(r["peak_bytes"] for r in rs) for m, rs in runs.items()}
    print(f"file: {size / 1e6:.1f} MB (PaddleClas ResNet50_vd, paddle.save), {args.rounds} interleaved rounds")
    print(f"{'path':<28} {'median time':>12} {'MB/s':>8} {'vs copy':>8} {'peak RSS rise':>14} {'x file':>7}")
    for mode, label in (("copy", "plain read + write"), ("convert", "convert_to_folder")):
        print(f"{label:<28} {seconds[mode] * 1e3:>9.1f} ms {size / 1e6 / seconds[mode]:>8.0f} "
              f"{seconds[mode] / seconds['copy']:>7.2f}x {peak[mode] / 1e6:>11.1f} MB {peak[mode] / size:>6.2f}x")


if __name__ == "__main__":
    main()
