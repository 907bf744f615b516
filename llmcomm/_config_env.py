"""`Configuration.from_env()`: providers and times from environment variables and `.env` files.

`.env` files are read by python-dotenv, so quotes, inline comments, `export`,
escapes, `${VAR}` expansion and multi-line values mean what they mean there. Every
invalid value is a `ConfigurationError` naming the variable (or the file and line),
the bad value (a key's value never) and what to set; a mistake never looks like
"no provider configured". Placeholder keys (`your-…`, `<…>`, `xxx…`, `changeme`,
`sk-xxxx`, empty) mean "not configured", with a warning naming the variable.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from ._config import (
    DEFAULT_FALLBACK_TIMEOUT,
    DEFAULT_MAX_TOKENS,
    DEFAULT_STREAM_IDLE_TIMEOUT,
    DEFAULT_TIMEOUT,
    KINDS,
    ProviderConfig,
    ProviderKind,
    url_problem,
)
from ._cost import PRICE_FIELDS
from ._errors import ConfigurationError
from ._secrets import check_sendable, mask_url

if TYPE_CHECKING:
    from ._config import Configuration

#: an int or a float read from a variable
N = TypeVar("N", int, float)
log = logging.getLogger("llmcomm.config")

#: what to set, listed in every "nothing configured" error
SETUP_HINT: Final = (
    "set ANTHROPIC_API_KEY (Anthropic), or OPENAI_API_KEY or OPENAI_BASE_URL (OpenAI or an OpenAI-compatible "
    "server), or CLAUDE_CLI_PATH (or put the `claude` CLI on PATH); optional: ANTHROPIC_BASE_URL, "
    "ANTHROPIC_MODEL, ANTHROPIC_MAX_TOKENS, OPENAI_MODEL, OPENAI_MAX_TOKENS, CLAUDE_CLI_MODEL, "
    "LLM_PROVIDERS (the order, e.g. anthropic,openai), LLM_TIMEOUT, LLM_FALLBACK_TIMEOUT, "
    "LLM_STREAM_IDLE_TIMEOUT (seconds), LLM_HEDGE (fixed or adaptive)"
)
KEY_VARIABLES: Final = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_PLACEHOLDER_WORDS: Final = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "replaceme",
        "replace-me",
        "replace_me",
        "placeholder",
        "...",
        "none",
        "null",
    }
)
_PLACEHOLDER_KEY_RE: Final = re.compile(r"sk-(?:[a-z0-9]+-)*[x.*]+")


def is_placeholder(value: str) -> bool:
    """Whether `value` is a template's stand-in rather than a key: `your-…`, `<…>`, `xxx…`,
    `changeme`, `sk-` followed only by x's or dots (`sk-xxxx`, `sk-ant-...`), or blank."""
    text = value.strip().lower()
    return (
        not text
        or text.startswith(("your", "xxx"))
        or (text.startswith("<") and text.endswith(">"))
        or text in _PLACEHOLDER_WORDS
        or _PLACEHOLDER_KEY_RE.fullmatch(text) is not None
    )


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables a `.env` file sets, read by python-dotenv's rules.

    A key without `=` sets nothing. Raises `ConfigurationError` naming the file when
    it cannot be read (missing, a directory, no permission, not UTF-8 text) and the
    line when python-dotenv cannot parse it; the text of a line is never shown.
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    path = Path(path)
    text = _read_text(path)
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # A binding's text starts with the blank lines before it: count to its first character.
            text_of = binding.original.string
            line = binding.original.line + text_of[: len(text_of) - len(text_of.lstrip())].count("\n")
            raise ConfigurationError(
                f"{path}:{line}: python-dotenv cannot parse this line; "
                "write it as KEY=value (quote values with spaces or #), or remove it"
            )
    values = dotenv_values(stream=io.StringIO(text))
    return {key: value for key, value in values.items() if value is not None}


def _read_text(path: Path) -> str:
    problem = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = f"dotenv file {str(path)!r} does not exist; create it or drop dotenv_path"
    except IsADirectoryError:
        problem = f"dotenv file {str(path)!r} is a directory, not a file; remove it or point dotenv_path at a file"
    except PermissionError:
        problem = f"dotenv file {str(path)!r} cannot be read (permission denied); make it readable or remove it"
    except OSError as exc:
        problem = f"dotenv file {str(path)!r} cannot be read ({exc.strerror or type(exc).__name__}); fix or remove it"
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = f"dotenv file {str(path)!r} is not UTF-8 text (byte {exc.start + 1}); save it as UTF-8"
    # Raised outside the handler: a decode error carries the whole file, keys included.
    raise ConfigurationError(problem)


def merged_environment(
    environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """The variables `Configuration.from_env(environ, dotenv_path)` reads.

    The `.env` file fills in what `environ` (default: the process environment) does
    not set: `dotenv_path` names it; when None and `environ` is None, `./.env` is
    read when it exists. Raises `ConfigurationError` for a file that cannot be read.
    """
    env: dict[str, str] = {}
    if dotenv_path is not None:
        env.update(read_dotenv(dotenv_path))
    elif environ is None and os.path.exists(".env"):  # a file, a directory or an unreadable one: read (or refuse) it
        env.update(read_dotenv(".env"))
    env.update(os.environ if environ is None else environ)
    return env


def from_mapping(cls: type[Configuration], env: Mapping[str, str]) -> Configuration:
    """The configuration `env` describes; see the module docstring for the rules."""
    timeout = _number(env, "LLM_TIMEOUT", DEFAULT_TIMEOUT)
    fallback_timeout = _number(env, "LLM_FALLBACK_TIMEOUT", DEFAULT_FALLBACK_TIMEOUT)
    stream_idle_timeout = _number(env, "LLM_STREAM_IDLE_TIMEOUT", DEFAULT_STREAM_IDLE_TIMEOUT)
    hedge = env.get("LLM_HEDGE", "").strip().lower() or "fixed"
    if hedge not in ("fixed", "adaptive"):
        raise ConfigurationError(
            f"LLM_HEDGE={env['LLM_HEDGE'].strip()!r} is not a hedge mode; set LLM_HEDGE=fixed or LLM_HEDGE=adaptive"
        )
    order = _order(env)
    found, notes = _detect(env, timeout)
    if order:
        missing = [kind for kind in order if kind not in found]
        if missing:
            # The order is a preference: a provider missing here is skipped, but never silently.
            message = (
                f"LLM_PROVIDERS={env['LLM_PROVIDERS'].strip()!r} names {', '.join(missing)}, which is not set up: "
                + "; ".join(_missing_hint(kind, env, notes) for kind in missing)
            )
            if len(missing) == len(order):
                raise ConfigurationError(message)
            log.warning("%s", message)
        providers = [found[kind] for kind in order if kind in found]
    else:
        providers = [found[kind] for kind in KINDS if kind in found]
    if env.get("ANTHROPIC_BASE_URL", "").strip() and "anthropic" not in found and "anthropic" not in order:
        if not providers:
            raise ConfigurationError(_missing_hint("anthropic", env, notes))
        log.warning("%s; the anthropic provider is not configured", _missing_hint("anthropic", env, notes))
    if not providers:
        why = f" ({'; '.join(notes.values())})" if notes else ""
        raise ConfigurationError(
            f"no LLM provider found in the environment{why}: {SETUP_HINT}",
            nothing_configured=True,
            notes=tuple(notes.values()),
        )
    return cls(
        providers=providers,
        fallback_timeout=fallback_timeout,
        stream_idle_timeout=stream_idle_timeout,
        timeout=timeout,
        hedge=hedge,  # type: ignore[arg-type]  # checked above
    )


def _missing_hint(kind: ProviderKind, env: Mapping[str, str], notes: Mapping[str, str]) -> str:
    if kind == "claude_cli":
        return "no `claude` executable on PATH; install the Claude Code CLI or set CLAUDE_CLI_PATH"
    variable = KEY_VARIABLES[kind]
    base_variable = f"{kind.upper()}_BASE_URL"
    if base_url := env.get(base_variable, "").strip():
        if variable in notes:  # set, but to a placeholder: say so, not that it is missing
            return f"{base_variable}={mask_url(base_url)!r} is set but {notes[variable]}"
        return f"{base_variable}={mask_url(base_url)!r} is set but {variable} is missing: set {variable}"
    return notes.get(variable, f"{variable} is not set: set it")


def _key(env: Mapping[str, str], variable: str, notes: dict[str, str]) -> str | None:
    if variable not in env:
        return None
    value = env[variable].strip()
    if is_placeholder(value):
        what = "is empty" if not value else "looks like a placeholder, not a key"
        notes[variable] = f"{variable} {what}: set a real key or remove it"
        log.warning("%s %s, so that provider is not configured; set a real key or remove it", variable, what)
        return None
    if problem := check_sendable(value, variable):
        raise ConfigurationError(problem)
    return value


def _url(env: Mapping[str, str], variable: str) -> str | None:
    value = env.get(variable, "").strip()
    if not value:
        return None
    if problem := url_problem(value):
        raise ConfigurationError(f"{variable}={mask_url(value)!r} {problem}; set it like {variable}=https://host:port")
    return value


def _detect(env: Mapping[str, str], timeout: float) -> tuple[dict[ProviderKind, ProviderConfig], dict[str, str]]:
    found: dict[ProviderKind, ProviderConfig] = {}
    notes: dict[str, str] = {}
    anthropic_key = _key(env, "ANTHROPIC_API_KEY", notes)
    anthropic_url = _url(env, "ANTHROPIC_BASE_URL")
    anthropic_max_tokens = _int(env, "ANTHROPIC_MAX_TOKENS", DEFAULT_MAX_TOKENS)
    openai_key = _key(env, "OPENAI_API_KEY", notes)
    openai_url = _url(env, "OPENAI_BASE_URL")
    openai_max_tokens = _int(env, "OPENAI_MAX_TOKENS", DEFAULT_MAX_TOKENS)
    anthropic_prices = _prices(env, "ANTHROPIC")
    openai_prices = _prices(env, "OPENAI")
    if anthropic_key:
        found["anthropic"] = ProviderConfig(
            name="anthropic",
            kind="anthropic",
            model=env.get("ANTHROPIC_MODEL", "").strip(),
            api_key=anthropic_key,
            base_url=anthropic_url,
            max_tokens=anthropic_max_tokens,
            timeout=timeout,
            input_price=anthropic_prices.get("input_price"),
            output_price=anthropic_prices.get("output_price"),
            cache_read_price=anthropic_prices.get("cache_read_price"),
            cache_write_price=anthropic_prices.get("cache_write_price"),
        )
    if openai_key or openai_url:
        found["openai"] = ProviderConfig(
            name="openai",
            kind="openai",
            model=env.get("OPENAI_MODEL", "").strip(),
            # OpenAI-compatible local servers often need no key, but the SDK wants one.
            api_key=openai_key or "unused",
            base_url=openai_url,
            max_tokens=openai_max_tokens,
            timeout=timeout,
            input_price=openai_prices.get("input_price"),
            output_price=openai_prices.get("output_price"),
            cache_read_price=openai_prices.get("cache_read_price"),
            cache_write_price=openai_prices.get("cache_write_price"),
        )
    if cli := _cli_path(env):
        found["claude_cli"] = ProviderConfig(
            name="claude_cli",
            kind="claude_cli",
            model=env.get("CLAUDE_CLI_MODEL", "").strip(),
            cli_path=cli,
            max_tokens=anthropic_max_tokens,
            timeout=timeout,
        )
    return found, notes


def _cli_path(env: Mapping[str, str]) -> str | None:
    given = env.get("CLAUDE_CLI_PATH", "").strip()
    if not given:
        return shutil.which("claude", path=env.get("PATH"))
    if not (found := shutil.which(given, path=env.get("PATH"))):
        raise ConfigurationError(
            f"CLAUDE_CLI_PATH={given!r} is not an executable file; point it at the `claude` executable or unset it"
        )
    return given if os.sep in given else found


def _order(env: Mapping[str, str]) -> list[ProviderKind]:
    raw = env.get("LLM_PROVIDERS", "").strip()
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in KINDS]
    if unknown:
        raise ConfigurationError(
            f"LLM_PROVIDERS={raw!r} names unknown kinds {unknown}; use a comma-separated list of {', '.join(KINDS)}"
        )
    return sorted((kind for kind in KINDS if kind in names), key=names.index)


def _prices(env: Mapping[str, str], prefix: str) -> dict[str, float]:
    """`<PREFIX>_INPUT_PRICE`, `_OUTPUT_PRICE`, `_CACHE_READ_PRICE`, `_CACHE_WRITE_PRICE` (per million tokens)."""
    prices: dict[str, float] = {}
    for field_name in PRICE_FIELDS:
        name = f"{prefix}_{field_name.upper()}"
        value = _parsed(env, name, float, lambda v: v >= 0, "a price per million tokens", "3.0, or unset it")
        if value is not None:
            prices[field_name] = value
    return prices


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = _parsed(env, name, float, lambda v: v > 0, "a positive number of seconds", "2.5")
    return default if value is None else value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _parsed(env, name, int, lambda v: v > 0, "a positive whole number", "4096")
    return default if value is None else value


def _parsed(
    env: Mapping[str, str], name: str, parse: Callable[[str], N], accept: Callable[[N], bool], what: str, like: str
) -> N | None:
    """`env[name]` parsed and accepted, None when unset; else `ConfigurationError` saying what to set.

    NaN and infinity are never accepted.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not accept(value):
        raise ConfigurationError(f"{name}={raw!r} is not {what}; set it like {name}={like}")
    return value
