"""The public surface is exactly `llmcomm.__all__`, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import llmcomm


def test_all_is_exactly_the_public_surface() -> None:
    eager = {
        name
        for name, value in vars(llmcomm).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "TYPE_CHECKING" and name != "Any"
    }
    lazy = set(llmcomm._LAZY)
    assert set(llmcomm.__all__) == eager | lazy
    assert llmcomm.__all__ == sorted(llmcomm.__all__)
    for name in llmcomm.__all__:
        value = getattr(llmcomm, name)
        assert value.__doc__, f"{name} has no docstring"


def test_import_loads_no_sdk_and_touches_no_environment() -> None:
    code = (
        "import sys, llmcomm\n"
        "assert 'anthropic' not in sys.modules and 'openai' not in sys.modules, sorted(sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PATH": ""}, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
