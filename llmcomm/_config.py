"""Configuration: which providers to use, in which order, and the times that bound a call.

Everything lives on instances; nothing here is global. `Configuration.from_env()`
reads the process environment (and a `.env` file) once, when called.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Final, Literal, final
from urllib.parse import urlsplit

from ._cost import PRICE_FIELDS, price_problem
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


def shared_state_problem(url: str) -> str | None:
    """Why `url` cannot name the Redis server of `Configuration.shared_state` (said without its
    password), or None when it can."""
    if any(char <= " " or char == "\x7f" for char in url):
        return "contains whitespace or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError:
        return "is not a valid URL (check the host and the port)"
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "must start with redis://, rediss:// or unix://"
    if parts.scheme != "unix" and not parts.hostname:
        return "has no host"
    if parts.scheme == "unix" and not parts.path:
        return "has no socket path"
    return None


def provider_problem(config: ProviderConfig) -> str | None:
    """Why `config`'s key, base URL or headers cannot be sent over HTTP, or None when they can.

    The reason names the field (and a header's name), never a value, and says what to do.
    """
    if config.api_key and (problem := check_sendable(config.api_key, "api_key")):
        return problem
    if config.base_url and (problem := url_problem(config.base_url)):
        return f"base_url {mask_url(config.base_url)!r} {problem}; set it like http://host:port"
    if (problem := headers_problem(config.headers)) is not None:
        return f"headers {problem}"
    return None


def headers_problem(headers: Mapping[str, str]) -> str | None:
    """Why a mapping of headers cannot be sent over HTTP, or None when it can.

    The reason names the header, never its value, and says what to do.
    """
    items: Iterable[tuple[object, object]] = headers.items()  # users pass anything: check it
    for name, value in items:
        if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
            return f"has a name that is not a valid HTTP header name ({name!r}); fix it"
        if not isinstance(value, str):
            return f"has header {name!r} whose value must be a str, got {type(value).__name__}"
        if problem := check_sendable(value, f"header {name!r}", spaces_inside=True):
            return f"is not sendable: {problem}"
    return None


@final
@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """How to reach one provider.

    `base_url` means what it means to the official SDK of that kind:
    `http://host:port` for Anthropic, `http://host:port/v1` for OpenAI-compatible
    servers. `timeout` bounds one attempt on this provider and the longest silence
    tolerated on its connection. `capabilities` (a set of `tools`, `images`,
    `documents`, `response_format`, `reasoning`, `prefill`) replaces the kind's
    default set of what the provider can take. For `kind="claude_cli"`, `cli_path` names the
    executable and `env` adds variables to the child's environment; `base_url` and
    `api_key` reach the child through its environment, never its argv.
    `auth_header` names the header that carries `api_key` for a gateway that wants
    another than the kind's own (`"x-api-key"`, `"api-key"`; `"authorization"`
    sends `Bearer <key>`); None sends what the official SDK of the kind sends.
    `input_price`, `output_price`, `cache_read_price` and `cache_write_price` are
    prices per million tokens from the user's own table: with the first two set,
    `LLMResponse.cost` is the reply's cost (cache reads and writes at the input
    price unless priced themselves); otherwise it is None, never a guess.
    `rpm` and `tpm` are this provider's requests and tokens per minute, enforced across
    the fleet with `Configuration.shared_state` (per process without it); None: no budget.
    No kind has the `prefill` capability by default: declare it for a model or
    server that accepts a partial assistant turn to continue. Raises
    `ConfigurationError` for an unknown kind, capability, price or a non-positive limit.
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
    capabilities: AbstractSet[str] | None = None
    input_price: float | None = None
    output_price: float | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None
    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigurationError(
                f"unknown provider kind {self.kind!r} for provider {self.name!r}; use one of {', '.join(KINDS)}"
            )
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_MODELS[self.kind])
        if self.max_tokens <= 0:
            raise ConfigurationError(f"max_tokens of provider {self.name!r} must be positive, got {self.max_tokens}")
        if not self.timeout > 0:  # also refuses NaN
            raise ConfigurationError(f"timeout of provider {self.name!r} must be positive, got {self.timeout}")
        if self.capabilities is not None:
            from ._capabilities import check_capabilities

            object.__setattr__(self, "capabilities", check_capabilities(self.capabilities, self.name))
        for price in PRICE_FIELDS:
            if (problem := price_problem(price, getattr(self, price))) is not None:
                raise ConfigurationError(f"provider {self.name!r}: {problem}")
        for limit in ("rpm", "tpm"):
            value = getattr(self, limit)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ConfigurationError(
                    f"{limit} of provider {self.name!r} must be a positive whole number per minute, got {value!r}; "
                    "leave it None for no budget"
                )

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"kind={self.kind!r}", f"model={self.model!r}"]
        if self.api_key:
            parts.append(f"api_key={mask_secret(self.api_key)!r}")
        if self.base_url:
            parts.append(f"base_url={mask_url(self.base_url)!r}")
        if self.cli_path:
            parts.append(f"cli_path={self.cli_path!r}")
        parts += [f"max_tokens={self.max_tokens}", f"timeout={self.timeout}"]
        parts += [f"{limit}={getattr(self, limit)}" for limit in ("rpm", "tpm") if getattr(self, limit) is not None]
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
    fails with `ProviderUnavailableError` instead of waiting. `shared_state` is the URL of
    a Redis server (`redis://[:password@]host:port/db`, needs `llmcomm[redis]`) where the
    processes of a fleet share breakers, rate-limit budgets and hedge statistics; None
    keeps them in this process. Its password never shows in a repr or an error.

    HTTP settings: `proxy` (a URL; http://, https://, socks5:// or socks5h://)
    carries every request, instead of the proxy environment variables; `verify` is
    False (no TLS verification), the path of a CA bundle or an `ssl.SSLContext`;
    `extra_headers` go with every HTTP request (a provider's own `headers` win).
    Raises `ConfigurationError` for a value that cannot be used.

    `hedge` chooses when a silent provider gets a backup raced beside it:
    `"fixed"` (the default) after `fallback_timeout`; `"adaptive"` at the running
    provider's observed p95 time to first token, under a hedge budget, or an
    `AdaptiveHedge(...)` with its own parameters (README, "Hedging").
    `reasoning_fallback_timeout` (30 s) replaces `fallback_timeout` for a call that asks
    for reasoning (`reasoning_effort` other than "none"): a thinking model may stream
    nothing for a while. `continue_on_interrupt=True` lets a stream that breaks after its first chunk go
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
    proxy: str | None = field(default=None, repr=False)
    verify: bool | str | ssl.SSLContext = True
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    shared_state: str | None = None

    hedge: Literal["fixed", "adaptive"] | AdaptiveHedge = "fixed"
    continue_on_interrupt: bool = False
    reasoning_fallback_timeout: float = 30.0

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
        if self.shared_state is not None and (problem := shared_state_problem(self.shared_state)):
            shown = mask_url(self.shared_state)
            if "@" in shown and "****@" not in shown:  # credentials the mask could not find (a space in them)
                shown = "(not shown: it holds credentials)"
            raise ConfigurationError(
                f"shared_state {shown!r} {problem}; set it like redis://host:6379/0 "
                "(or LLM_SHARED_STATE_URL), or leave it unset to keep state in this process"
            )
        if self.proxy is not None and not isinstance(self.proxy, str):
            raise ConfigurationError(f"proxy must be a URL (str), got {type(self.proxy).__name__}")
        if not isinstance(self.verify, bool | str | ssl.SSLContext):
            raise ConfigurationError(
                "verify must be True, False, the path of a CA bundle or an ssl.SSLContext, "
                f"got {type(self.verify).__name__}"
            )
        if isinstance(self.verify, str) and not os.path.exists(self.verify):
            raise ConfigurationError(f"verify names a CA bundle that does not exist: {self.verify!r}")
        if (problem := headers_problem(self.extra_headers)) is not None:
            raise ConfigurationError(f"extra_headers {problem}")
        for name in (
            "fallback_timeout",
            "stream_idle_timeout",
            "timeout",
            "pool_timeout",
            "reasoning_fallback_timeout",
        ):
            if not getattr(self, name) > 0:  # also refuses NaN
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_connections < 1:
            raise ConfigurationError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {self.max_retries}")
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"provider names must be unique, got {names}")

    def __repr__(self) -> str:
        # URLs that may carry credentials are masked; header values are not shown at all.
        masked = {"shared_state", "proxy", "extra_headers"}
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name not in masked]
        shown += [f"{name}={mask_url(url)!r}" for name in ("proxy", "shared_state") if (url := getattr(self, name))]
        if self.extra_headers:
            shown.append(f"extra_headers=[{', '.join(repr(name) for name in self.extra_headers)}]")
        return f"Configuration({', '.join(shown)})"

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
        found (then with `nothing_configured` True). `LLM_SHARED_STATE_URL` sets
        `shared_state`.
        """
        from ._config_env import from_mapping, merged_environment

        env = merged_environment(environ, dotenv_path)
        config = from_mapping(cls, env)
        if shared := env.get("LLM_SHARED_STATE_URL", "").strip():
            try:
                config = replace(config, shared_state=shared)
            except ConfigurationError as exc:
                raise ConfigurationError(str(exc).replace("shared_state", "LLM_SHARED_STATE_URL", 1)) from None
        return config


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables a `.env` file sets, by python-dotenv's rules (see `_config_env.read_dotenv`)."""
    from ._config_env import read_dotenv as read

    return read(path)
