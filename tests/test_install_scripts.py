"""The test command's own installers say what they install and why, and never stop the suite for good."""

from __future__ import annotations

import pytest

from tests.claude_cli import install


@pytest.fixture
def no_npm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "find_binary", lambda prefix=install.PREFIX: None)
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv(install.SKIP_VARIABLE, raising=False)


@pytest.mark.usefixtures("no_npm")
def test_without_npm_it_explains_and_lets_the_suite_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert install.main() == 0
    out = capsys.readouterr().out
    assert "about 400 MB" in out  # what, and why, before any wait
    assert "npm is not on PATH" in out
    assert "the real_cli tests will be skipped" in out
    assert install.SKIP_VARIABLE in out


@pytest.mark.usefixtures("no_npm")
def test_under_ci_a_missing_binary_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CI", "true")
    assert install.main() == 1
    assert "CI must run the real binary" in capsys.readouterr().out


def test_the_switch_skips_without_trying(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fail(prefix: object = None) -> None:
        raise AssertionError("nothing is looked for or installed")

    monkeypatch.setattr(install, "find_binary", fail)
    monkeypatch.setenv(install.SKIP_VARIABLE, "1")
    monkeypatch.setenv("CI", "true")
    assert install.main() == 0
    assert "skipped" in capsys.readouterr().out
