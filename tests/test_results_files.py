"""Every results file says where its figures came from: a commit and a date."""

import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
PROVENANCE = re.compile(r"\b(commit|committed in) [0-9a-f]{7,}\b.*\d{4}-\d{2}-\d{2}")


@pytest.mark.parametrize("path", sorted(BENCH.glob("results_*.md")), ids=lambda p: p.name)
def test_results_file_names_its_commit_and_date(path):
    assert PROVENANCE.search(path.read_text()), f"{path.name} does not name the commit and date that produced it"
