"""The README's Python quickstart runs as written and prints sane numbers."""

import contextlib
import io
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_runs():
    blocks = python_blocks()
    assert blocks, "README has no python block"
    out = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README quickstart", "exec"), namespace)
    h, mi = float(namespace["h"]), float(namespace["mi"])
    assert 0 < h <= np.log2(1797)
    assert 0.1 < mi < h
    assert namespace["grad"].shape == (200, 64)
    assert np.all(np.isfinite(np.asarray(namespace["grad"])))
    assert out.getvalue().strip()


def test_readme_commands_point_at_real_things():
    text = README.read_text()
    assert 'pip install ".[test]" && python -m pytest' in text
    assert (README.parent / ".ci" / "run").exists()


def test_readme_first_command_runs_the_demo_through_the_console_script():
    text = README.read_text()
    first = re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0].strip()
    assert first == 'python -m pip install ".[data]" && jaxdse demo'
    pyproject = (README.parent / "pyproject.toml").read_text()
    assert 'jaxdse = "jaxdse.cli:main"' in pyproject


def test_readme_command_lines_parse():
    from jaxdse.cli import build_parser

    parser = build_parser()
    lines = [
        line.split("#")[0].split()
        for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
        for line in block.splitlines()
        if line.startswith("jaxdse ")
    ]
    assert len(lines) >= 5
    for words in lines:
        args = parser.parse_args(words[1:])
        assert args.command in ("dse", "dsmi", "sweep", "layers", "compare", "demo")


def test_layout_names_every_file_of_the_package():
    text = README.read_text()
    layout = text[text.index("## Layout") :]
    files = sorted(str(p.relative_to(README.parent)) for p in (README.parent / "jaxdse").rglob("*.py"))
    assert [f for f in files if f"`{f}`" not in layout] == []
