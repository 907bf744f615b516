"""The one masking rule for secrets: API keys, credentials in URLs, auth header values.

Every place that shows a configuration value or an error text goes through here:
`ProviderConfig`'s repr, error messages, the `RedactingFilter` on log records, the
`llmcomm providers` listing. The rule:

- an API key (or any known secret) shows as `sk-…abcd`: its first 3 and last 4
  characters when it is 16 characters or longer, else `****`;
- credentials in a URL (`http://user:password@host`) show as `http://****@host`,
  and the values of secret-looking query parameters (`?api-key=…`, `?key=…`,
  `?token=…`) as `****`;
- in free text, anything that looks like `x-api-key: …`, `Authorization: Bearer …`
  or an `sk-…` key is masked by the same rule.

`check_sendable` tells whether a value can travel in an HTTP header at all, and
says why not without showing the value.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import orjson

MASK: Final = "****"
#: secrets shorter than this are never searched for in free text: they would mask plain words
MIN_SECRET_LENGTH: Final = 8

_URL_USERINFO_RE: Final = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s@/'\"<>]*(?:/[^\s@/'\"<>?#]*)?)@"
)
_URL_QUERY_SECRET_RE: Final = re.compile(
    r"(?P<head>[?&](?:api[-_]?key|key|token|access[-_]?token|auth|password|secret|sig|signature)=)(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)
_HEADER_RE: Final = re.compile(
    r"""(?P<head>\b(?:x-api-key|x-goog-api-key|api[-_]?key|proxy-authorization|authorization)\b"""
    r"""['"]?\s*[:=,]\s*(?:b?['"])?\s*(?:(?:bearer|basic|token)\s+)?)(?P<value>[^\s'",;)}\]]+)""",
    re.IGNORECASE,
)
_KEY_RE: Final = re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")


def mask_secret(secret: str | None) -> str:
    """`secret` as it may be shown: never more than its first 3 and last 4 characters.

    Shorter than 16 characters (or None, or empty): `****`.
    """
    if not secret or len(secret) < 16:
        return MASK
    return f"{secret[:3]}…{secret[-4:]}"


def mask_url(url: str | None) -> str:
    """`url` with its credentials masked: `http://user:pw@host/v1?key=k` → `http://****@host/v1?key=****`.

    Works on any text, also a URL that does not parse; None gives an empty string.
    """
    if not url:
        return ""
    if "@" in url:
        url = _URL_USERINFO_RE.sub(_mask_userinfo, url)
    if "=" in url:
        url = _URL_QUERY_SECRET_RE.sub(_mask_query_value, url)
    return url


def split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its `user:password@`, and the `Authorization: Basic …` value they stand for.

    The HTTP stack turns URL credentials into Basic authentication anyway; sending
    them as a header instead keeps them out of every URL it logs. A URL without
    credentials (or one that does not parse) comes back unchanged, with None.
    """
    if "@" not in url:
        return url, None
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
    except ValueError:
        return url, None
    if host == parts.netloc:
        return url, None
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret masked: the given `secrets` (also percent-encoded or
    escaped), URL credentials, auth header values and `sk-…` keys."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        for form in _forms(secret):
            if form in text:
                text = text.replace(form, mask_secret(secret))
    text = mask_url(text) if "://" in text else text
    if "sk-" in text:
        text = _KEY_RE.sub(_mask_key, text)
    return _HEADER_RE.sub(_mask_header, text)


def _forms(secret: str) -> list[str]:
    """`secret` as it may appear in a text: as is, percent-encoded, and escaped in a str or bytes repr."""
    forms = [secret, quote(secret, safe=""), repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1]]
    return [form for i, form in enumerate(forms) if form not in forms[:i]]


def check_sendable(value: str, what: str, *, spaces_inside: bool = False) -> str | None:
    """Why `value` cannot be sent in an HTTP header, or None when it can.

    Only printable ASCII travels in a header; an API key has no whitespace at all,
    other header values (`spaces_inside=True`) may have single spaces or tabs
    inside but none at either end. The reason names `what` and the offending
    character's position and Unicode name, never the value.
    """
    for position, char in enumerate(value, 1):
        if " " < char < "\x7f" or (spaces_inside and char in " \t" and 1 < position < len(value)):
            continue
        if char in " \t" and (position == 1 or position == len(value)):
            return f"{what} starts or ends with whitespace; remove it"
        if char in " \t":
            return f"{what} contains whitespace at character {position}; a key has none: remove it"
        named = unicodedata.name(char, "")
        desc = f"the character {named}" if named else _CONTROL_NAMES.get(char, "a control character")
        return (
            f"{what} contains {desc} (U+{ord(char):04X}) at character {position}, which cannot be sent in "
            "an HTTP header; copy the value again as plain ASCII text"
        )
    return None


_CONTROL_NAMES: Final = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}


def _mask_userinfo(match: re.Match[str]) -> str:
    return f"{match.group('scheme')}{MASK}@"


def _mask_query_value(match: re.Match[str]) -> str:
    return f"{match.group('head')}{MASK}"


def _mask_key(match: re.Match[str]) -> str:
    return mask_secret(match.group(0))


def _mask_header(match: re.Match[str]) -> str:
    value = match.group("value")
    if "…" in value or value == MASK:  # already masked
        return match.group(0)
    return f"{match.group('head')}{mask_secret(value)}"


def scrub(text: str, secret: str | None) -> str:
    """`text` with `secret` and anything else secret-looking masked (`_secrets.redact`),
    for messages a server may echo a key or a URL into."""
    return redact(text, (secret,))


def scrub_exception(error: BaseException, secret: str | None) -> None:
    """Mask `secret` (and URL credentials) in an error and every error in its
    `__cause__`/`__context__` chain, before llmcomm chains it under its own.

    The errors stay in the chain; only secrets are masked, in their messages, args,
    parsed bodies, and the text a `UnicodeError` keeps (which is the whole value).
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending and len(seen) < 32:  # chains are short; a cycle must not loop forever
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _scrub_one(current, secret)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def _scrub_one(error: BaseException, secret: str | None) -> None:
    if isinstance(error, UnicodeEncodeError):  # it keeps the whole text it could not encode
        error.object = scrub(error.object, secret)
        error.args = (error.encoding, error.object, error.start, error.end, error.reason)
    error.args = tuple(scrub(a, secret) if isinstance(a, str) else a for a in error.args)
    message = getattr(error, "message", None)
    if isinstance(message, str):
        error.message = scrub(message, secret)  # type: ignore[attr-defined]
    body = getattr(error, "body", None)
    if body is not None:
        raw = orjson.dumps(body, default=str).decode()
        masked_body = scrub(raw, secret)
        if masked_body != raw:
            error.body = orjson.loads(masked_body)  # type: ignore[attr-defined]


#: libraries whose exception objects never reach a caller: they keep requests (headers,
#: the API key among them), connections and SDK internals
FOREIGN_LIBRARIES: Final = frozenset({"httpx2", "httpcore2", "h11", "h2", "anyio", "anthropic", "openai", "coredis"})


class CauseSummary(Exception):
    """What a third-party library raised under an llmcomm error, kept as text only.

    `kind` is the library's exception class (e.g. `"httpx2.ConnectError"`); the
    message is masked by the one masking rule. No request, response or connection
    object is kept, so nothing reachable from an llmcomm error holds a secret.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


def detach_foreign_causes(error: BaseException, secrets: Iterable[str | None] = ()) -> None:
    """Replace the third-party exceptions under `error` by a `CauseSummary` of the first.

    Walks `__cause__` (then `__context__`) from `error`; the first exception of a
    foreign library (`FOREIGN_LIBRARIES`) becomes its summary, and what hung under it
    is dropped, along with the implicit context of every llmcomm error above it.
    """
    current = error
    for _ in range(32):  # chains are short; a cycle must not loop forever
        following = current.__cause__ if current.__cause__ is not None else current.__context__
        if following is None:
            return
        if type(following).__module__.split(".")[0] in FOREIGN_LIBRARIES:
            kind = f"{type(following).__module__.split('.')[0]}.{type(following).__qualname__}"
            current.__cause__ = CauseSummary(kind, redact(str(following), secrets))
            current.__context__ = None
            current.__suppress_context__ = True
            return
        current = following
