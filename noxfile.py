"""One toolchain: the README's test command and CI both run `nox` (lint, typecheck, tests, examples, docs)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "examples", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# docs/*.md is not formatted: ruff would rewrite the snippet includes inside Python fences
SOURCES = ["llmcomm", "tests", "examples", "benchmarks", "docs/_hooks.py", "noxfile.py"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (the rule families of STYLE.md, and formatting) and the import layers (import-linter)."""
    session.install("ruff>=0.9", "import-linter>=2.1", "-e", ".")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)
    session.run("lint-imports")  # the contracts in pyproject.toml: the flow reads from the folder names


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and its tests."""
    session.install("-e", ".[dev,otel]")
    session.run("mypy", "--strict", "llmcomm", "tests", "examples", "benchmarks", "docs")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on asyncio and trio, including the real `claude` binary from npm."""
    _install_test_needs(session)
    args = session.posargs or ["-q", "--durations=15"]
    session.run("python", "-m", "pytest", *args, env={"PYTHONDONTWRITEBYTECODE": "1"})


def _install_test_needs(session: nox.Session, *more: str) -> None:
    """What the tests need besides Python packages, each installer saying what and why."""
    session.install("-e", ".[test,otel]", *more)
    # The real Claude Code CLI is cached in .cache/ (git-ignored): a warm machine skips the download.
    session.run("python", "tests/claude_cli/install.py")
    # Headless Chromium (Debian's package) for the browser test of the FastAPI example.
    session.run("bash", "tests/browser/install_chromium.sh", external=True)
    # Debian's redis-server for the fleet tests (shared breaker and budgets on Redis).
    session.run("python", "tests/fleet/install_redis.py")


@nox.session
def examples(session: nox.Session) -> None:
    """The tour in examples/example.py (against the loopback simulator when no keys are set)."""
    session.install("-e", ".")
    session.run("python", "examples/example.py")
    session.run("python", "examples/service_factory.py")
    session.run("python", "examples/tool_calling.py")
    session.run("python", "examples/images.py")
    session.run("python", "examples/structured_output.py")
    session.run("python", "examples/tool_loop.py")
    session.run("llmcomm", "demo")


@nox.session
def coverage(session: nox.Session) -> None:
    """The tests under coverage: which lines of llmcomm no test runs (`nox -s coverage`; not part of CI).

    Tests that run llmcomm in a child process (fork, gunicorn, the CLI) are not counted,
    so the portal and sync modules read lower than they are exercised.
    """
    _install_test_needs(session, "pytest-cov>=5")
    args = session.posargs or ["-q", "--cov=llmcomm", "--cov-report=term-missing:skip-covered"]
    session.run("python", "-m", "pytest", *args, env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site (MkDocs Material, API reference from the docstrings), built with --strict."""
    session.install("-e", ".[docs]")
    site = os.path.join(session.create_tmp(), "site")
    session.run("mkdocs", "build", "--strict", "--quiet", "--site-dir", site, env={"NO_MKDOCS_2_WARNING": "1"})
    session.log(f"docs site built in {site}; `mkdocs serve` shows it at http://127.0.0.1:8000/")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the raw HTTP floor, the official SDKs and LiteLLM (`-- --smoke` for seconds)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


if os.environ.get("CI"):
    # CI has no terminal: keep pip quiet, but never hide a failure.
    nox.options.verbose = False
