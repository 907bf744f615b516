"""Configuration: which providers to use, in which order, and the times that bound a call.

Everything lives on instances; nothing here is global. `Configuration.from_env()`
reads the process environment (and a `.env` file) once, when called.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, Literal, final
from urllib.parse import urlsplit

from ._errors import ConfigurationError
from ._secrets import check_sendable, mask_secret, mask_url

if TYPE_CHECKING:
    from ._routing import AdaptiveHedge, CooldownTracker, RetryHandler
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
#: the hedge rules `Configuration(hedge=...)` names
HEDGE_MODES: tuple[str, ...] = ("fixed", "adaptive")
#: what a provider can take (DESIGN Part 2, "Capabilities and routing")
CAPABILITIES: frozenset[str] = frozenset(("tools", "images", "documents", "response_format", "reasoning", "prefill"))

#: the characters of an HTTP header name (RFC 9110 token)
_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def url_problem(url: str) -> str | None:
    """Why `url` cannot serve as a base URL (said without its credentials), or None when it can."""
    if any(char <= " " or char == "\x7f" for char in url):
        return "contains whitespace or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError:
        return "is not a valid URL (check the host and the port)"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


def provider_problem(config: ProviderConfig) -> str | None:
    """Why `config`'s key, base URL or headers cannot be sent over HTTP, or None when they can.

    The reason names the field (and a header's name), never a value, and says what to do.
    """
    if config.api_key and (problem := check_sendable(config.api_key, "api_key")):
        return problem
    if config.base_url and (problem := url_problem(config.base_url)):
        return f"base_url {mask_url(config.base_url)!r} {problem}; set it like http://host:port"
    items: Iterable[tuple[object, object]] = config.headers.items()  # users pass anything: check it
    for name, value in items:
        if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
            return f"headers has a name that is not a valid HTTP header name ({name!r}); fix it"
        if not isinstance(value, str):
            return f"header {name!r} must be a str, got {type(value).__name__}"
        if problem := check_sendable(value, f"header {name!r}", spaces_inside=True):
            return problem
    return None


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
    `auth_header` names the header that carries `api_key` for a gateway that wants
    another than the kind's own (`"x-api-key"`, `"api-key"`; `"authorization"`
    sends `Bearer <key>`); None sends what the official SDK of the kind sends.
    `capabilities`, a set of names from `tools`, `images`, `documents`,
    `response_format`, `reasoning`, `prefill`, replaces the kind's default set
    (None keeps it); no kind has `prefill` by default: declare it for a model or
    server that accepts a partial assistant turn to continue. Raises
    `ConfigurationError` for an unknown kind, capability or a non-positive limit.
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
    auth_header: str | None = None
    capabilities: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigurationError(
                f"unknown provider kind {self.kind!r} for provider {self.name!r}; use one of {', '.join(KINDS)}"
            )
        if self.capabilities is not None:
            names: object = self.capabilities
            if isinstance(names, str) or not isinstance(names, Iterable):
                raise ConfigurationError(
                    f"capabilities of provider {self.name!r} must be a set of names, like {{'prefill'}}"
                )
            given = frozenset(names)
            if unknown := sorted(map(str, given - CAPABILITIES)):
                raise ConfigurationError(
                    f"unknown capabilities {unknown} for provider {self.name!r}; use names from {sorted(CAPABILITIES)}"
                )
            object.__setattr__(self, "capabilities", given)
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_MODELS[self.kind])
        if self.max_tokens <= 0:
            raise ConfigurationError(f"max_tokens of provider {self.name!r} must be positive, got {self.max_tokens}")
        if not self.timeout > 0:  # also refuses NaN
            raise ConfigurationError(f"timeout of provider {self.name!r} must be positive, got {self.timeout}")

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"kind={self.kind!r}", f"model={self.model!r}"]
        if self.api_key:
            parts.append(f"api_key={mask_secret(self.api_key)!r}")
        if self.base_url:
            parts.append(f"base_url={mask_url(self.base_url)!r}")
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

    `hedge` chooses when a silent provider gets a backup raced beside it:
    `"fixed"` (the default) after `fallback_timeout`; `"adaptive"` at the running
    provider's observed p95 time to first token, under a hedge budget, or an
    `AdaptiveHedge(...)` with its own parameters (README, "Hedging").
    `continue_on_interrupt=True` lets a stream that breaks after its first chunk go
    on from the next provider with the `prefill` capability (never by default).
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
    hedge: Literal["fixed", "adaptive"] | AdaptiveHedge = "fixed"
    continue_on_interrupt: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", tuple(self.providers))
        if isinstance(self.hedge, str):
            if self.hedge not in HEDGE_MODES:
                raise ConfigurationError(
                    f"hedge must be 'fixed' or 'adaptive' (or an AdaptiveHedge), got {self.hedge!r}"
                )
        elif type(self.hedge).__name__ != "AdaptiveHedge":  # the class is imported lazily, with routing
            raise ConfigurationError(
                f"hedge must be 'fixed' or 'adaptive' (or an AdaptiveHedge), got {type(self.hedge).__name__}"
            )
        for name in ("fallback_timeout", "stream_idle_timeout", "timeout", "pool_timeout"):
            if not getattr(self, name) > 0:  # also refuses NaN
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_connections < 1:
            raise ConfigurationError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {self.max_retries}")
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"provider names must be unique, got {names}")

    def require_providers(self) -> None:
        """Raise `ConfigurationError` when this configuration cannot serve a call.

        That is when no provider is configured, or when a provider's API key, base
        URL or headers cannot be sent over HTTP (a typographic dash or a line break
        pasted into a key, say): the error names the provider and the field, never
        the value. `LLMCommunication` calls this before any I/O.
        """
        if not self.providers:
            from ._config_env import SETUP_HINT

            raise ConfigurationError(f"no LLM provider is configured: {SETUP_HINT}", nothing_configured=True)
        for entry in self.providers:
            if isinstance(entry, ProviderConfig) and (problem := provider_problem(entry)):
                raise ConfigurationError(problem, provider=entry.name)

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
        file (read by python-dotenv's rules) fill in what the environment does not
        set: `dotenv_path` names the file; when None and `environ` is the process
        environment, `./.env` is read if it exists. Placeholder keys (`your-…`,
        `<…>`, `xxx…`, `changeme`, `sk-xxxx`, blank) count as not set, with a
        warning naming the variable. Raises `ConfigurationError` naming the
        variable, the bad value (never a key's) and what to set for any invalid
        value or unreadable file, and listing the variables when no provider is
        found (then with `nothing_configured` True).
        """
        from ._config_env import from_mapping, merged_environment

        return from_mapping(cls, merged_environment(environ, dotenv_path))


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables a `.env` file sets, by python-dotenv's rules (see `_config_env.read_dotenv`)."""
    from ._config_env import read_dotenv as read

    return read(path)
