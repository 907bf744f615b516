"""The tool-calling and image examples run on the simulator and print what they promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import example_env, run_example


def run(name: str, tmp_path: Path) -> str:
    result = run_example(name, example_env(tmp_path), tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_tool_calling_example(tmp_path: Path) -> None:
    assert run("tool_calling.py", tmp_path).splitlines() == [
        "the model calls get_weather({'city': 'Paris'})",
        "the model calls get_weather({'city': 'Rome'})",
        "answer (stop): Paris: 18 C and sunny. Rome: 21 C and clear.",
    ]


@pytest.mark.parametrize("name", ["images.py"])
def test_the_image_example(name: str, tmp_path: Path) -> None:
    assert run(name, tmp_path).splitlines() == [
        "claude: A single transparent pixel.  (sent as 'image')",
        "gpt: A single transparent pixel.  (sent as 'image_url')",
    ]
