"""Every results file says where its figures came from: a commit and a date."""

import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
PROVENANCE = re.compile(r"\b(commit|committed in) [0-9a-f]{7,}\b.*\d{4}-\d{2}-\d{2}")


@pytest.mark.parametrize("path", sorted(BENCH.glob("results_*.md")), ids=lambda p: p.name)
def test_results_file_names_its_commit_and_date(path):
    assert PROVENANCE.search(path.read_text()), f"{path.name} does not name the commit and date that produced it"


def test_benchmarks_measure_the_checkout_not_an_installed_copy(tmp_path):
    """A benchmark imports provenance first; jaxdse then comes from this checkout even when
    another jaxdse (an installed wheel, here a stand-in) is earlier on the path."""
    import subprocess
    import sys

    stand_in = tmp_path / "elsewhere" / "jaxdse"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    code = (
        f"import sys; sys.path[:0] = [{str(stand_in.parent)!r}, {str(BENCH)!r}]\n"
        "import provenance, jaxdse\n"
        "provenance.check_checkout()\n"
        "print(jaxdse.__file__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve().parent == BENCH.parent / "jaxdse"
