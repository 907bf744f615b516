"""The structured-output and tool-loop examples run on the simulator and print what they promise."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import example_env, run_example


def run(name: str, tmp_path: Path) -> list[str]:
    result = run_example(name, example_env(tmp_path), tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def test_the_structured_output_example(tmp_path: Path) -> None:
    assert run("structured_output.py", tmp_path) == [
        "Oslo, Norway: 709037 people (from gpt)",
        "biggest: Oslo, Bergen, Trondheim",
        "invalid after 1 reply: 'no JSON here' (json_invalid)",
    ]


def test_the_tool_loop_example(tmp_path: Path) -> None:
    assert run("tool_loop.py", tmp_path) == [
        "tool result: 18 C and sunny",
        "tool result: error: KeyError: 'Berlin'",
        "tool result: 14:05",
        "answer after 3 calls: In Paris it is 14:05, 18 C and sunny. I have no weather for Berlin.",
    ]
