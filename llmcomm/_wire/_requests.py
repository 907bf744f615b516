"""What llmcomm sends to the `anthropic` and `openai` kinds: endpoint, headers, body bytes.

Pure: no I/O and no SDK import. `endpoint(config)` is derived once per provider
the way the locked official SDK versions derive it (anthropic 2.14, openai 3.57:
`tests/test_wire_parity.py` holds the two to each other), except that llmcomm
sends its own `user-agent` and no `x-stainless-*` headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, final

import orjson

from .._config import ProviderConfig
from .._errors import ConfigurationError, InvalidRequestError
from .._secrets import split_credentials
from .._version import __version__

#: the `anthropic-version` the locked anthropic SDK sends
ANTHROPIC_VERSION: Final = "2026-10-21"
ANTHROPIC_BASE_URL: Final = "https://api.anthropic.com"
OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
#: what the OpenAI SDK path sent for a provider without a key (compatible servers need none)
OPENAI_KEYLESS: Final = "unused"

#: path appended to `base_url`, as each SDK appends it
_PATHS: Final[Mapping[str, str]] = {"anthropic": "v1/messages", "openai": "chat/completions"}
#: an HTTP header name (RFC 9110 token)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: what a header value may hold: visible ASCII, spaces and tabs
_VALUE = re.compile(r"[\t\x20-\x7e]*")


@final
@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one provider's requests go, and the headers each of them carries.

    `headers` has lower-case names; `key_hint` is the variable an authentication
    error tells the user to check.
    """

    url: str
    headers: Mapping[str, str]
    key_hint: str


def endpoint(config: ProviderConfig, environ: Mapping[str, str] | None = None) -> Endpoint:
    """The endpoint and default headers of an `anthropic` or `openai` provider.

    `environ` fills in what `config` leaves unset, as the SDK reads the process
    environment: `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` (then
    `ANTHROPIC_AUTH_TOKEN`), `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_ORG_ID`,
    `OPENAI_PROJECT_ID`; None reads nothing. Raises `ConfigurationError` for any
    other kind, and for a header (name or value, `api_key` included) that HTTP
    cannot carry; the message names the header, never its value.
    """
    env: Mapping[str, str] = environ if environ is not None else {}
    kind = config.kind
    if kind not in _PATHS:
        raise ConfigurationError(
            f"provider {config.name!r} is of kind {kind!r}, which is not sent over HTTP; use anthropic or openai",
            provider=config.name,
        )
    prefix = kind.upper()
    base = (
        config.base_url
        or env.get(f"{prefix}_BASE_URL")
        or (ANTHROPIC_BASE_URL if kind == "anthropic" else OPENAI_BASE_URL)
    )
    # Credentials in the URL travel as a Basic header (what the HTTP stack would make of
    # them), so no URL it logs carries them.
    base, basic_auth = split_credentials(base)
    key = config.api_key
    headers = {"accept": "application/json", "content-type": "application/json", "user-agent": _user_agent()}
    if kind == "anthropic":
        key = key or env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")
        headers["anthropic-version"] = ANTHROPIC_VERSION
    else:
        key = key or env.get("OPENAI_API_KEY") or OPENAI_KEYLESS
        if organization := env.get("OPENAI_ORG_ID"):
            headers["openai-organization"] = organization
        if project := env.get("OPENAI_PROJECT_ID"):
            headers["openai-project"] = project
    if key:
        name = (config.auth_header or "authorization").lower()
        _check_header(config, name, key, "auth_header")
        headers[name] = f"Bearer {key}" if name == "authorization" else key
    if basic_auth is not None:
        headers["authorization"] = basic_auth
    for name, value in config.headers.items():  # the user's own headers win, as with the SDK's default_headers
        _check_header(config, name, value, "headers")
        headers[name.lower()] = value
    return Endpoint(url=join_url(base, _PATHS[kind]), headers=headers, key_hint=f"{prefix}_API_KEY")


def join_url(base_url: str, path: str) -> str:
    """`path` under `base_url`, as the SDKs join them: `http://h/proxy` + `v1/messages` is `http://h/proxy/v1/messages`."""
    return (base_url if base_url.endswith("/") else base_url + "/") + path.lstrip("/")


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The JSON bytes of a request body (the dict a provider's `build_body` returns).

    Raises `InvalidRequestError` before any I/O when a value (usually in
    `extra`) cannot be sent as JSON.
    """
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequestError(
            f"the request cannot be sent as JSON ({exc}); pass only str, int, float, bool, None, "
            "lists and dicts with str keys, in `extra` too"
        ) from None


def _check_header(config: ProviderConfig, name: str, value: str, option: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ConfigurationError(
            f"provider {config.name!r}: {name!r} is not a valid HTTP header name; fix `{option}`",
            provider=config.name,
        )
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        what = "the API key" if option == "auth_header" else f"the value of header {name!r}"
        raise ConfigurationError(
            f"provider {config.name!r}: {what} holds characters HTTP cannot carry (only printable ASCII); "
            "fix the configuration",
            provider=config.name,
        )


def _user_agent() -> str:
    return f"llmcomm/{__version__}"
