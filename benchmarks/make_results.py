"""Assemble benchmarks/RESULTS.md from the sections each benchmark script writes.

Every ``bench_*.py`` writes its own ``results_*.md``; this joins them in a fixed
order so that rerunning one benchmark refreshes its section only.

    python benchmarks/make_results.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["results_core.md", "results_estimators.md", "results_slq.md", "results_training.md"]
# Titles of sections written before their scripts put a "## " title first (their
# "## " subsections become "### " under it).
TITLES = {
    "results_layers.md": "Layer-wise DSE: `layerwise` against loops over layers",
    "results_lowrank.md": "Low-rank DSE (`Nystrom`) and streaming",
}


def section(name: str, text: str) -> str:
    """``text`` under a "## " title: its own first line, else the one in :data:`TITLES`."""
    text = text.rstrip()
    if text.startswith("## ") or name not in TITLES:
        return text
    lines = [("#" + line if line.startswith("## ") else line) for line in text.splitlines()]
    return "\n".join([f"## {TITLES[name]}", "", *lines])


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
            parts += [section(name, path.read_text()), ""]
    out = HERE / "RESULTS.md"
    out.write_text("\n".join(parts))
    return out


if __name__ == "__main__":
    print(merge())
