"""The official SDKs' path, kept as the reference the direct HTTP path is held to.

llmcomm no longer sends through the SDKs; `tests/test_wire_send.py` checks that
each failure maps to the same llmcomm error as it did when the SDK sent the
request, with this mapping (the library's own until the direct path replaced it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import httpx2
import orjson

from llmcomm._config import ProviderConfig
from llmcomm._errors import ConfigurationError, LLMException, ProviderUnavailableError
from llmcomm._secrets import scrub, scrub_exception, split_credentials
from llmcomm._wire._sse import OversizedMessageError
from llmcomm._wire._status import error_for_status, parse_retry_after
from llmcomm.providers._http import map_transport_error, request_timeout


def sdk_client_options(config: ProviderConfig, http_client: httpx2.AsyncClient | None) -> dict[str, Any]:
    """Keyword arguments both official SDK clients take, the same way.

    Credentials in `base_url` travel as an `Authorization: Basic` header (what the
    HTTP stack would make of them), so the URL it logs carries none.
    """
    base_url, basic_auth = split_credentials(config.base_url) if config.base_url else (None, None)
    headers = dict(config.headers)
    if basic_auth and not any(name.lower() == "authorization" for name in headers):
        headers["Authorization"] = basic_auth
    return {
        "base_url": base_url,
        "max_retries": 0,  # llmcomm owns retries: a hidden SDK sleep would break the fallback race
        # Every SDK request carries a full Timeout: its pool part must be the client's own.
        "timeout": request_timeout(config.timeout, http_client.timeout.pool if http_client else None),
        "http_client": http_client,
        "default_headers": headers or None,
    }


@contextmanager
def map_sdk_errors(sdk: ModuleType, provider: str, config: ProviderConfig, model: str, wire: str) -> Iterator[None]:
    """The one place where an SDK's, the transport's and the decoder's failures become llmcomm errors.

    Both SDKs raise `APIStatusError` (with the response and its parsed body) and
    `APIConnectionError`; `wire` names the protocol for the malformed-stream message.
    """
    key_hint = f"{config.kind.upper()}_API_KEY"
    try:
        yield
    except LLMException:
        raise
    except UnicodeEncodeError as exc:
        # Configurations are checked before any I/O; this is the net under that check.
        raise _unsendable(exc, provider, config) from exc
    except sdk.APIStatusError as exc:
        body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
        inner = body.get("error")  # Anthropic nests the error object; the OpenAI SDK unwraps it
        error: dict[str, Any] = inner if isinstance(inner, dict) else body
        detail = str(error.get("message") or exc.response.reason_phrase or "error")
        code = error.get("code") or error.get("type")
        scrub_exception(exc, config.api_key)
        raise error_for_status(
            exc.status_code,
            scrub(detail, config.api_key),
            provider=provider,
            key_hint=key_hint,
            model=model,
            retry_after=parse_retry_after(exc.response.headers),
            code=str(code) if code else None,
        ) from exc
    except (sdk.APIConnectionError, httpx2.HTTPError) as exc:
        if _is_local_protocol_error(exc):
            raise _unsendable(exc, provider, config) from exc
        raise map_transport_error(exc, provider, config) from exc
    except (orjson.JSONDecodeError, OversizedMessageError, KeyError, TypeError, AttributeError) as exc:
        raise ProviderUnavailableError(
            f"malformed event stream ({type(exc).__name__}); the server did not speak {wire}",
            provider=provider,
            retryable=False,
        ) from exc


def _unsendable(exc: BaseException, provider: str, config: ProviderConfig) -> ConfigurationError:
    """A header value the HTTP stack refused, as the configuration mistake it is (never retried)."""
    scrub_exception(exc, config.api_key)  # the original error shows the whole value
    return ConfigurationError(
        "a header value (the API key or a header option) cannot be sent over HTTP: only printable ASCII "
        f"can; fix the configuration of provider {provider!r}",
        provider=provider,
    )


def _is_local_protocol_error(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            return False
        if isinstance(cause, httpx2.LocalProtocolError | UnicodeEncodeError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def sdk_arguments(body: dict[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """SDK call arguments for a wire `body`.

    Only the fields every SDK version takes by name are passed by name; the rest go
    in `extra_body`, so options the SDK's signature does not list (or no longer
    lists) still reach the server unchanged.
    """
    arguments = {k: v for k, v in body.items() if k in named}
    extra = {k: v for k, v in body.items() if k not in named}
    if extra:
        arguments["extra_body"] = extra
    return arguments
