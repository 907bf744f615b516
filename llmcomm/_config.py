"""Configuration: which providers to use, in which order, and the times that bound a call.

Everything lives on instances; nothing here is global. `Configuration.from_env()`
reads the process environment (and a `.env` file) once, when called.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, final

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._routing import CooldownTracker, RetryHandler
    from .providers._base import BaseProvider

ProviderKind = Literal["anthropic", "openai", "claude_cli"]
KINDS: tuple[ProviderKind, ...] = ("anthropic", "openai", "claude_cli")

DEFAULT_MODELS: Mapping[ProviderKind, str] = {
    "anthropic": "claude-sonnet-5-5",
    "openai": "gpt-4o-mini",
    "claude_cli": "sonnet",
}
DEFAULT_MAX_TOKENS = 4096
DEFAULT_TIMEOUT = 600.0
DEFAULT_FALLBACK_TIMEOUT = 2.0
DEFAULT_STREAM_IDLE_TIMEOUT = 60.0

_SETUP_HINT = (
    "set ANTHROPIC_API_KEY or OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible "
    "server), or install the `claude` CLI on PATH / set CLAUDE_CLI_PATH; "
    "see examples/example.env"
)


def mask_secret(secret: str | None) -> str | None:
    """A form of `secret` that is safe to show: never more than its last 4 characters."""
    if not secret:
        return secret
    if len(secret) < 16:
        return "****"
    return f"{secret[:3]}…{secret[-4:]}"


@final
@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """How to reach one provider.

    `base_url` means what it means to the official SDK of that kind:
    `http://host:port` for Anthropic, `http://host:port/v1` for OpenAI-compatible
    servers. `timeout` bounds one attempt on this provider and the longest silence
    tolerated on its connection. For `kind="claude_cli"`, `cli_path` names the
    executable and `env` adds variables to the child's environment; `base_url` and
    `api_key` reach the child through its environment, never its argv.
    """

    name: str
    kind: ProviderKind
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float = DEFAULT_TIMEOUT
    cli_path: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigurationError(
                f"unknown provider kind {self.kind!r} for provider {self.name!r}; use one of {', '.join(KINDS)}"
            )
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_MODELS[self.kind])
        if self.max_tokens <= 0:
            raise ConfigurationError(f"max_tokens of provider {self.name!r} must be positive, got {self.max_tokens}")
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout of provider {self.name!r} must be positive, got {self.timeout}")

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"kind={self.kind!r}", f"model={self.model!r}"]
        if self.api_key:
            parts.append(f"api_key={mask_secret(self.api_key)!r}")
        if self.base_url:
            parts.append(f"base_url={self.base_url!r}")
        if self.cli_path:
            parts.append(f"cli_path={self.cli_path!r}")
        parts += [f"max_tokens={self.max_tokens}", f"timeout={self.timeout}"]
        return f"ProviderConfig({', '.join(parts)})"

    __str__ = __repr__


@final
@dataclass(frozen=True, slots=True)
class Configuration:
    """The ordered providers of an `LLMCommunication` and the times that bound a call.

    `providers` may mix `ProviderConfig`s with ready provider objects (anything
    implementing `BaseProvider`). `timeout` is the default deadline of one call,
    covering every attempt, retry sleep and fallback; `fallback_timeout` is how long
    the first content token may take before the next provider is raced;
    `stream_idle_timeout` is the longest gap between content chunks once a stream
    has started. `retry` and `cooldown` take the policy objects themselves
    (`RetryHandler`, `CooldownTracker`); when given, they replace the `max_retries`,
    `retry_*` and `cooldown_*` settings. `max_connections` bounds the HTTP connection pool shared by the
    HTTP providers; a request that finds no free connection within `pool_timeout`
    fails with `ProviderUnavailableError` instead of waiting.
    """

    providers: Sequence[ProviderConfig | BaseProvider] = ()
    fallback_timeout: float = DEFAULT_FALLBACK_TIMEOUT
    stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = 2
    retry_base_delay: float = 0.5
    retry_max_delay: float = 8.0
    cooldown_failures: int = 3
    cooldown_seconds: float = 30.0
    auth_cooldown_seconds: float = 300.0
    max_connections: int = 1000
    pool_timeout: float = 10.0
    retry: RetryHandler | None = None
    cooldown: CooldownTracker | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", tuple(self.providers))
        for name in ("fallback_timeout", "stream_idle_timeout", "timeout", "pool_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_connections < 1:
            raise ConfigurationError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {self.max_retries}")
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"provider names must be unique, got {names}")

    def require_providers(self) -> None:
        """Raise `ConfigurationError` when no provider is configured."""
        if not self.providers:
            raise ConfigurationError(f"no LLM provider is configured: {_SETUP_HINT}")

    def with_providers(self, *providers: ProviderConfig | BaseProvider) -> Configuration:
        """A copy of this configuration with other providers."""
        return replace(self, providers=providers)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | None = None,
    ) -> Configuration:
        """Detect providers from environment variables.

        `environ` defaults to the process environment. Variables from a `.env`
        file fill in what the environment does not set: `dotenv_path` names the file;
        when None and `environ` is the process environment, `./.env` is read if it
        exists. Raises `ConfigurationError` naming the variables to set when no
        provider is found.
        """
        env: dict[str, str] = {}
        if dotenv_path is not None:
            path = Path(dotenv_path)
            if not path.is_file():
                raise ConfigurationError(f"dotenv file {str(path)!r} does not exist; create it or drop dotenv_path")
            env.update(read_dotenv(path))
        elif environ is None and Path(".env").is_file():
            env.update(read_dotenv(Path(".env")))
        env.update(os.environ if environ is None else environ)
        return _from_mapping(cls, env)


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file: `KEY=value` lines, `export` prefixes, quotes and comments."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigurationError(f"{path}:{number}: expected KEY=value; fix or remove that line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds; set it like {name}=2.5") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number; set it like {name}=4096") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {raw!r}")
    return value


def _detect(env: Mapping[str, str], timeout: float) -> dict[ProviderKind, ProviderConfig]:
    found: dict[ProviderKind, ProviderConfig] = {}
    if key := env.get("ANTHROPIC_API_KEY", "").strip():
        found["anthropic"] = ProviderConfig(
            name="anthropic",
            kind="anthropic",
            model=env.get("ANTHROPIC_MODEL", "").strip(),
            api_key=key,
            base_url=env.get("ANTHROPIC_BASE_URL", "").strip() or None,
            max_tokens=_int(env, "ANTHROPIC_MAX_TOKENS", DEFAULT_MAX_TOKENS),
            timeout=timeout,
        )
    openai_key = env.get("OPENAI_API_KEY", "").strip()
    openai_url = env.get("OPENAI_BASE_URL", "").strip()
    if openai_key or openai_url:
        found["openai"] = ProviderConfig(
            name="openai",
            kind="openai",
            model=env.get("OPENAI_MODEL", "").strip(),
            # OpenAI-compatible local servers often need no key, but the SDK wants one.
            api_key=openai_key or "unused",
            base_url=openai_url or None,
            max_tokens=_int(env, "OPENAI_MAX_TOKENS", DEFAULT_MAX_TOKENS),
            timeout=timeout,
        )
    cli = env.get("CLAUDE_CLI_PATH", "").strip() or shutil.which("claude", path=env.get("PATH"))
    if cli:
        found["claude_cli"] = ProviderConfig(
            name="claude_cli",
            kind="claude_cli",
            model=env.get("CLAUDE_CLI_MODEL", "").strip(),
            cli_path=cli,
            max_tokens=_int(env, "ANTHROPIC_MAX_TOKENS", DEFAULT_MAX_TOKENS),
            timeout=timeout,
        )
    return found


def _from_mapping(cls: type[Configuration], env: Mapping[str, str]) -> Configuration:
    timeout = _number(env, "LLM_TIMEOUT", DEFAULT_TIMEOUT)
    found = _detect(env, timeout)
    order_raw = env.get("LLM_PROVIDERS", "").strip()
    if order_raw:
        order = [k.strip() for k in order_raw.split(",") if k.strip()]
        unknown = [k for k in order if k not in KINDS]
        if unknown:
            raise ConfigurationError(
                f"LLM_PROVIDERS names unknown kinds {unknown}; use a comma-separated list of {', '.join(KINDS)}"
            )
        missing = [k for k in order if k not in found]
        if missing and len(missing) == len(order):
            raise ConfigurationError(
                f"LLM_PROVIDERS={order_raw!r} but none of those providers is set up: {_SETUP_HINT}"
            )
        providers = [config for kind, config in found.items() if kind in order]
        providers.sort(key=lambda config: order.index(config.kind))
    else:
        providers = [found[k] for k in KINDS if k in found]
    if not providers:
        raise ConfigurationError(f"no LLM provider found in the environment: {_SETUP_HINT}")
    return cls(
        providers=providers,
        fallback_timeout=_number(env, "LLM_FALLBACK_TIMEOUT", DEFAULT_FALLBACK_TIMEOUT),
        stream_idle_timeout=_number(env, "LLM_STREAM_IDLE_TIMEOUT", DEFAULT_STREAM_IDLE_TIMEOUT),
        timeout=timeout,
    )
