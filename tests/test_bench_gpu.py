"""The accelerator benchmark runs end to end in its quick mode (tiny sizes, CPU) and writes its report."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_gpu_quick_writes_every_section(tmp_path):
    out = tmp_path / "results_gpu.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=480,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    text = out.read_text()
    for heading in (
        "Parity with dse_dsmi",
        "Exact DSE",
        "Stochastic DSE",
        "DSMI, 10 classes",
        "Value and gradient",
        "Training step",
        "Layer-wise DSE",
        "Low-rank DSE",
    ):
        assert heading in text, heading
    assert "Section stopped" not in text, text
    assert "| float64 | auto |" in text and "| 100 | eigh |" in text
