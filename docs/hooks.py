"""mkdocs hooks: pages and figures generated from files elsewhere in the repository.

Nothing here is copied by hand into ``docs/``:

* ``examples/README.md`` becomes ``examples/index.md`` and one page per
  script (``examples/NAME.md``), and the figures that the examples write to
  ``examples/figures/`` are added next to them;
* ``CHANGELOG.md`` becomes ``changelog.md``;
* ``reference/cli.md`` holds the ``--help`` text of the ``jaxdse`` command and
  each subcommand, taken from :func:`jaxdse.cli.build_parser`;
* a line ``<!-- include: PATH -->`` in any page is replaced by the content of
  ``PATH`` (relative to the repository root), its headings moved down below
  the page's own, or by a note saying how to produce the file when it is absent.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+)(?: shift=(?P<shift>\d))? -->$", re.MULTILINE)

# Files that a benchmark writes, and how to write them.
PRODUCERS = {
    "benchmarks/results_accuracy.md": "Run `python benchmarks/bench_accuracy.py` to produce it.",
    "benchmarks/results_gpu.md": "Run `python benchmarks/bench_gpu.py` on a machine with a GPU to produce it.",
}


def _cli_reference() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the checkout's parser, as mkdocstrings reads the checkout's docstrings
    from jaxdse.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal's width
    try:
        parser = build_parser("")
        helps = [("jaxdse", parser.format_help())]
        for action in parser._actions:  # the subcommands, in the order of `jaxdse --help`
            if isinstance(action, argparse._SubParsersAction):
                helps += [(f"jaxdse {name}", sub.format_help()) for name, sub in action.choices.items()]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    lines = [
        "# Command line reference",
        "",
        "The `--help` text of `jaxdse` and of each subcommand, generated from the parser when the documentation is",
        "built (`jaxdse.cli.build_parser`). See the [command line guide](../guides/cli.md) for examples.",
        "",
    ]
    for title, text in helps:
        lines += [f"## {title}", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


EXAMPLE = re.compile(r"^## (?P<stem>\w+)\.py\b")


def _example_pages() -> dict[str, str]:
    """``examples/README.md`` as pages: one per ``## NAME.py`` section, the rest on the index.

    Every section about a script becomes ``examples/NAME.md`` with its heading as
    the page title; the introduction and the other sections stay on
    ``examples/index.md``, which links to each script's page.
    """
    head, tail, sections, titles = [], [], {}, {}
    current, seen_section, fenced = None, False, False
    for line in (ROOT / "examples" / "README.md").read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            seen_section = True
            match = EXAMPLE.match(line)
            current = match.group("stem") if match else None
            if current:
                titles[current] = line[3:].strip()
                sections[current] = [f"# {titles[current]}", ""]
                continue
        if current:
            sections[current].append(line)
        else:
            (tail if seen_section else head).append(line)
    links = ["## The examples", ""] + [f"- [{titles[stem]}]({stem}.md)" for stem in sections] + [""]
    pages = {"examples/index.md": "\n".join(head + links + tail)}
    pages.update({f"examples/{stem}.md": "\n".join(lines) for stem, lines in sections.items()})
    return pages


def _changelog_page() -> str:
    return (ROOT / "CHANGELOG.md").read_text()


def on_files(files, config):
    generated = {
        **_example_pages(),
        "changelog.md": _changelog_page(),
        "reference/cli.md": _cli_reference(),
    }
    for uri, content in generated.items():
        files.append(File.generated(config, uri, content=content))
    for figure in sorted((ROOT / "examples" / "figures").glob("*.png")):
        files.append(File.generated(config, f"examples/figures/{figure.name}", abs_src_path=str(figure)))
    for figure in sorted((ROOT / "benchmarks").glob("*.png")):
        files.append(File.generated(config, f"figures/benchmarks/{figure.name}", abs_src_path=str(figure)))
    return files


def _shift_headings(text: str, shift: int) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,6} ", line):
            line = "#" * shift + line
        out.append(line)
    return "\n".join(out)


def _include(match) -> str:
    rel = match.group("path")
    shift = int(match.group("shift") or 1)
    path = ROOT / rel
    if not path.is_file():
        how = PRODUCERS.get(rel, "")
        return f'!!! note "Not generated yet"\n    `{rel}` is not in this checkout. {how}\n'
    return _shift_headings(path.read_text(), shift)


def on_page_markdown(markdown, page, config, files):
    return INCLUDE.sub(_include, markdown)


def on_config(config):
    # Rebuild when the sources of generated pages change under `mkdocs serve`.
    for rel in ("examples/README.md", "examples/figures", "CHANGELOG.md", "benchmarks", "jaxdse/cli/parser.py"):
        path = str(ROOT / rel)
        if path not in config.watch:
            config.watch.append(path)
    return config
