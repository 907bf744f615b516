"""`llmcomm --schema/--json-schema` prints the reply's JSON; `-i/--image` attaches images."""

from __future__ import annotations

import base64
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcomm._cli import main
from llmcomm.testing import FakeServer, Script
from tests.helpers import KEY, clear_provider_environment

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeServer]:
    clear_provider_environment(monkeypatch, tmp_path)
    monkeypatch.setattr(sys, "stdin", TerminalInput())
    with FakeServer() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        yield fake


def test_inline_schema_prints_the_json(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.enqueue(Script(text='{"city": "Oslo"}'))
    assert main(["--schema", json.dumps(SCHEMA), "Capital of Norway?"]) == 0
    assert json.loads(capsys.readouterr().out) == {"city": "Oslo"}
    sent = server.requests[-1].body["output_config"]["format"]["schema"]
    assert sent["additionalProperties"] is False and sent["properties"] == {"city": {"type": "string"}}


def test_schema_file_with_a_retry(server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "city.json"
    path.write_text(json.dumps(SCHEMA))
    server.enqueue(Script(text="Oslo"), Script(text='{"city": "Oslo"}'))
    assert main(["--json-schema", str(path), "Capital?"]) == 0
    assert json.loads(capsys.readouterr().out) == {"city": "Oslo"}
    assert len(server.requests) == 2


def test_a_reply_that_never_decodes_fails_with_it(server: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.enqueue(Script(text="Oslo"), Script(text="Still Oslo"))
    assert main(["--schema", json.dumps(SCHEMA), "Capital?"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "2 replies did not match" in captured.err and "'Still Oslo'" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--schema", "{not json"], "not valid JSON"),
        (["--schema", "[1]"], "must be a JSON object"),
        (["--json-schema", "/nonexistent/schema.json"], "cannot read the schema file"),
        (["--schema", "{}", "--json-schema", "x"], "not allowed with"),
        (["-i", "/nonexistent.png"], "cannot read the image"),
    ],
)
def test_usage_errors(
    server: FakeServer, argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "hi"]) == 2
    assert message in capsys.readouterr().err
    assert server.requests == []


def test_an_image_that_is_not_one_is_a_usage_error(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["-i", str(text), "hi"]) == 2
    assert "not a PNG, JPEG, GIF or WebP image" in capsys.readouterr().err


def test_images_are_attached(server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pixel.png"
    path.write_bytes(PNG)
    server.enqueue(Script(text="A pixel."))
    assert main(["-i", str(path), "--image", str(path), "What is this?"]) == 0
    assert capsys.readouterr().out == "A pixel.\n"
    content = server.requests[-1].body["messages"][0]["content"]
    assert [block["type"] for block in content] == ["text", "image", "image"]
    assert content[1]["source"] == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
