"""Every public name appears in the documentation's API reference (docs/check_reference.py)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "check_reference.py"


def test_every_public_name_is_in_the_api_reference():
    spec = importlib.util.spec_from_file_location("check_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.check() == []
