"""`make gpu-check`: the GPU tests (`pytest -m gpu`) and the GPU benchmark, results as JSON lines in one file.

    python -m benchmarks.gpu_check                      # writes gpu-check.jsonl
    python -m benchmarks.gpu_check --out results.jsonl --quick

Lines: one {"kind": "device", ...} (GPU name and count, torch, CUDA), one {"kind": "test", ...} per GPU test
(outcome, seconds, the failure's first line), one {"kind": "bench", ...} per benchmark line of
`python -m benchmarks` (its JSON lines, as printed). Without a CUDA GPU: one line, exit 0. Exit 1 when a
test failed or the benchmark did not finish.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def device_line() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    names = [torch.cuda.get_device_name(i) for i in range(count)]
    return {"kind": "device", "gpu": names[0], "gpus": count, "names": names, "torch": torch.__version__,
            "cuda": torch.version.cuda}  # fmt: skip


def nvidia_smi_sees_a_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def junit_lines(junit: Path) -> list[dict[str, Any]]:
    """One line per test case of pytest's JUnit XML report."""
    lines = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "failed" if tag in ("failure", "error") else "skipped"
                message = (found.get("message") or "").splitlines()[0][:300] if found.get("message") else ""
        lines.append({"kind": "test", "test": f"{case.get('classname')}::{case.get('name')}",
                      "outcome": outcome, "seconds": round(float(case.get("time", 0)), 2),
                      "message": message})  # fmt: skip
    return lines


def run_tests(pytest_args: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", *pytest_args, "tests"]  # fmt: skip
        print("$", " ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=False)  # its output goes to the terminal as it runs
        if not junit.exists():
            return [{"kind": "test", "test": "pytest -m gpu", "outcome": "failed", "message": "no report"}]
        return junit_lines(junit)


def run_bench(bench_args: list[str]) -> list[dict[str, Any]]:
    """`python -m benchmarks` (the GPU cases on a GPU machine); its JSON lines, its other output shown."""
    command = [sys.executable, "-m", "benchmarks", *bench_args]
    print("$", " ".join(command), flush=True)
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.startswith("{"):
            lines.append({"kind": "bench", **json.loads(line)})
    if proc.wait() != 0:
        lines.append({"kind": "bench", "case": "benchmarks", "error": f"exit {proc.returncode}"})
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="gpu-check.jsonl", help="the JSON lines file (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the benchmark's --quick")
    parser.add_argument("--no-bench", action="store_true", help="the tests only")
    args = parser.parse_args()
    device = device_line()
    if device is None:
        import torch

        if nvidia_smi_sees_a_gpu():
            sys.exit(f"gpu-check: nvidia-smi sees a GPU but torch {torch.__version__} cannot use it "
                     "(a CPU wheel? rm -rf .venv && make install)")  # fmt: skip
        print("gpu-check: no CUDA GPU visible to torch on this machine; nothing to check")
        return
    lines = [device, *run_tests([])]
    if not args.no_bench:
        lines += run_bench(["--quick"] if args.quick else [])
    Path(args.out).write_text("".join(json.dumps(line) + "\n" for line in lines))
    failed = [ln["test"] for ln in lines if ln["kind"] == "test" and ln["outcome"] == "failed"]
    broken = [ln for ln in lines if ln["kind"] == "bench" and "error" in ln]
    passed = sum(ln["kind"] == "test" and ln["outcome"] == "passed" for ln in lines)
    print(f"gpu-check on {device['gpus']} × {device['gpu']}: {passed} test(s) passed, {len(failed)} failed"
          f"{', benchmark failed' if broken else ''}; results in {args.out}")  # fmt: skip
    for name in failed:
        print(f"  FAILED {name}")
    sys.exit(1 if failed or broken else 0)


if __name__ == "__main__":
    main()
