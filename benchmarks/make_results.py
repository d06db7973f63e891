"""Assemble benchmarks/RESULTS.md from the sections each benchmark script writes.

Every ``bench_*.py`` writes its own ``results_*.md``; this joins them in a fixed
order so that rerunning one benchmark refreshes its section only.

    python benchmarks/make_results.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["results_core.md", "results_estimators.md", "results_slq.md", "results_training.md"]


def merge() -> Path:
    parts = [
        "# Benchmark results",
        "",
        "Each section is written by the script named in its command line; see that script for the method.",
        "The mutation check of the tests (`tools/mutation.py`) keeps its runs in `tools/results_mutation.md`.",
        "",
    ]
    names = ORDER + sorted(p.name for p in HERE.glob("results_*.md") if p.name not in ORDER)
    for name in names:
        path = HERE / name
        if path.exists():
            parts += [path.read_text().rstrip(), ""]
    out = HERE / "RESULTS.md"
    out.write_text("\n".join(parts))
    return out


if __name__ == "__main__":
    print(merge())
