"""A griffe extension for the documentation build: prose ``Raises:`` and doctests.

Many of jaxdse's docstrings describe their errors in prose
(``TypeError/ValueError naming the argument ...``) rather than as Google-style
``Exception: description`` items. griffe cannot split such a section into items
and drops it with a warning; this extension renames the section ``Errors:`` when
its first item is not of the form ``Name: description``, so that it is rendered
as a note with its text unchanged.

Doctest examples (``>>>`` lines and their output, up to the next blank line)
are wrapped in a ``pycon`` code block, so Markdown does not read them as
nested quotes. Sphinx roles (``:func:`name```, ``:mod:`~a.b```) become inline
code, and a paragraph's closing ``::`` before a literal block becomes ``:``.
The library's docstrings are not modified.
"""

from __future__ import annotations

import re

from griffe import Extension

_SECTION = re.compile(r"^(?P<indent>[ \t]*)Raises:[ \t]*\n(?P<first>[ \t]+\S[^\n]*)", re.MULTILINE)
_ITEM = re.compile(r"^\s*[A-Za-z_][\w.]*\s*:\s")
_DOCTEST = re.compile(r"^(?P<indent>[ \t]*)>>> .*(?:\n(?P=indent)\S.*)*", re.MULTILINE)


_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|obj|exc):`(?P<tilde>~?)(?P<name>[^`]+)`")
_LITERAL = re.compile(r"(\S)::[ \t]*\n(?=[ \t]*\n)")


def _role(match):
    name = match.group("name")
    return f"`{name.rsplit('.', 1)[-1] if match.group('tilde') else name}`"


def _fence(match):
    indent = match.group("indent")
    return f"{indent}```pycon\n{match.group(0)}\n{indent}```"


class DocstringMarkup(Extension):
    def on_instance(self, *, obj, **kwargs):
        docstring = getattr(obj, "docstring", None)
        if docstring is None:
            return
        docstring.value = _LITERAL.sub(r"\1:\n", _ROLE.sub(_role, docstring.value))
        if ">>> " in docstring.value and "```" not in docstring.value:
            docstring.value = _DOCTEST.sub(_fence, docstring.value)
        if "Raises:" not in docstring.value:
            return

        def rename(match):
            if _ITEM.match(match.group("first")):
                return match.group(0)
            return f"{match.group('indent')}Errors:\n{match.group('first')}"

        docstring.value = _SECTION.sub(rename, docstring.value)
