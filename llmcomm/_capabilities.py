"""What a call needs and which providers can give it: planning a call over the configured providers.

Each provider states what it can take beyond text: `tools`, `images`,
`documents`, `response_format`, `reasoning`, `prefill`. A kind has a default set;
`ProviderConfig(capabilities={...})` replaces it (e.g. for a compatible server
without vision), and a user's own provider may carry a `capabilities` attribute.
A call is planned only over the providers that have every capability it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal, TypeVar

from ._errors import ConfigurationError, InvalidRequestError
from ._messages import DocumentPart, ImagePart
from ._types import Attempt, Request

P = TypeVar("P")

Capability = Literal["tools", "images", "documents", "response_format", "reasoning", "prefill"]
CAPABILITIES: Final[frozenset[str]] = frozenset(
    ("tools", "images", "documents", "response_format", "reasoning", "prefill")
)

#: what each kind can take by default. No kind has `prefill`: current models reject a
#: trailing assistant turn. The CLI provider sends text and `--json-schema`.
DEFAULT_CAPABILITIES: Final[dict[str, frozenset[str]]] = {
    "anthropic": frozenset(("tools", "images", "documents", "response_format", "reasoning")),
    "openai": frozenset(("tools", "images", "documents", "response_format", "reasoning")),
    "claude_cli": frozenset(("images", "response_format", "reasoning")),
}


def declared(owner: object, name: str) -> object:
    """An optional member of `owner` (a provider, or its config), None when absent or when reading it raises.

    A user's provider may compute one in a property that fails; the member is then
    treated as not declared, and the call goes on as it would without it.
    """
    try:
        return getattr(owner, name, None)
    except Exception:
        return None


def requirements(request: Request) -> frozenset[str]:
    """The capabilities `request` needs (empty for a text-only call)."""
    needs: set[str] = set()
    if request.tools:
        needs.add("tools")
    if request.response_format is not None:
        needs.add("response_format")
    if request.reasoning_effort not in (None, "none"):
        needs.add("reasoning")
    for m in request.messages:
        if m.tool_calls or m.role == "tool":
            needs.add("tools")
        if m.content.__class__ is not str:
            for part in m.content:
                if isinstance(part, ImagePart):
                    needs.add("images")
                elif isinstance(part, DocumentPart):
                    needs.add("documents")
    return frozenset(needs)


def capabilities_of(provider: Any) -> frozenset[str]:
    """What `provider` can take: its own `capabilities`, its configuration's, or its kind's default.

    A member that fails to read (a user's property that raises) counts as not declared.
    """
    own: Any = declared(provider, "capabilities")
    if own is None:
        own = declared(declared(provider, "config"), "capabilities")
    if own is not None:
        return frozenset(own)
    return DEFAULT_CAPABILITIES.get(str(getattr(provider, "kind", "")), frozenset())


def plan(needs: frozenset[str], providers: Sequence[P]) -> tuple[tuple[P, ...], tuple[tuple[P, frozenset[str]], ...]]:
    """`(usable, skipped)`: the providers that can serve a call needing `needs`, in order, and the
    others with what each lacks.

    Raises `InvalidRequestError` naming what is missing and which providers lack it
    when none can.
    """
    if not needs:
        return tuple(providers), ()
    usable: list[P] = []
    skipped: list[tuple[P, frozenset[str]]] = []
    for provider in providers:
        missing = needs - capabilities_of(provider)
        if missing:
            skipped.append((provider, missing))
        else:
            usable.append(provider)
    if not usable:
        gaps = "; ".join(f"{getattr(p, 'name', p)!r} lacks {', '.join(sorted(m))}" for p, m in skipped)
        raise InvalidRequestError(
            f"no configured provider can serve this call, which needs {', '.join(sorted(needs))}: {gaps}; "
            "configure a provider that has them, or declare them with ProviderConfig(capabilities={...}) "
            "if the server does support them"
        )
    return tuple(usable), tuple(skipped)


def skip_unsupported(request: Request, providers: Sequence[P], skipped: list[Attempt]) -> tuple[P, ...]:
    """The providers that can serve `request`; the others are recorded in `skipped` as
    `"skipped-unsupported"` attempts. Raises `InvalidRequestError` when none can (see `plan`)."""
    usable, unsupported = plan(requirements(request), providers)
    skipped += [
        Attempt(str(getattr(p, "name", p)), "skipped-unsupported", f"lacks {', '.join(sorted(missing))}")
        for p, missing in unsupported
    ]
    return usable


def check_capabilities(value: Iterable[str], provider: str) -> frozenset[str]:
    """`value` as a set of capability names; a `ConfigurationError` naming the unknown ones."""
    if isinstance(value, str):
        raise ConfigurationError(f"capabilities of provider {provider!r} must be a set of names, not a str")
    names = frozenset(value)
    unknown = names - CAPABILITIES
    if unknown:
        raise ConfigurationError(
            f"unknown capabilities {sorted(unknown)} for provider {provider!r}; use some of {sorted(CAPABILITIES)}"
        )
    return names
