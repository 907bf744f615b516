"""The per-call options every wire maps its own way, and `extra` aimed at one provider.

`temperature`, `top_p`, `seed` and `user` are hints: a model that does not take one
(`_model_facts.dropped_hints`) gets a body without it, and the attempt lists it as
dropped. `stop` is a requirement. `extra` keys go to every provider, except a key
that names a configured provider or a kind and holds a dict: that dict is
deep-merged into the body of that provider (or every provider of that kind) only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._model_facts import dropped_hints
from .._types import Request


def hints_given(request: Request) -> frozenset[str]:
    """The hint options the caller set on `request`."""
    values = (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("seed", request.seed),
        ("user", request.user),
    )
    return frozenset(name for name, value in values if value is not None)


def request_dropped(request: Request, kind: str | None, model: str) -> tuple[str, ...]:
    """The hints of `request` a `kind` provider serving `model` leaves out (for `Attempt.dropped`)."""
    given = hints_given(request)
    return dropped_hints(kind, model, given) if given else ()


def apply_options(body: dict[str, Any], request: Request, *, kind: str, name: str) -> dict[str, Any]:
    """Add the call's sampling options and `extra` to a wire body (in place; returned too).

    Anthropic: `stop_sequences`, `top_p`, `temperature`, `metadata.user_id` (no `seed`).
    OpenAI: `stop`, `top_p`, `temperature`, `seed`, `safety_identifier`. Then the
    shared `extra`, then `extra` for this kind, then for this provider's name.
    """
    model = str(body.get("model", ""))
    dropped = request_dropped(request, kind, model)
    if request.temperature is not None and "temperature" not in dropped:
        body["temperature"] = request.temperature
    if request.top_p is not None and "top_p" not in dropped:
        body["top_p"] = request.top_p
    if kind == "anthropic":
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.user is not None:
            metadata = body.get("metadata")
            body["metadata"] = {**(metadata if isinstance(metadata, Mapping) else {}), "user_id": request.user}
    else:
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None and "seed" not in dropped:
            body["seed"] = request.seed
        if request.user is not None:
            body["safety_identifier"] = request.user
    body.update(request.extra)
    for target in dict.fromkeys((kind, name)):  # a provider named like its kind is merged once
        if (fields := request.extra_for.get(target)) is not None:
            deep_merge(body, fields)
    return body


def deep_merge(into: dict[str, Any], fields: Mapping[str, Any]) -> None:
    """Merge `fields` into `into`: dicts merge key by key, anything else replaces."""
    for key, value in fields.items():
        current = into.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            deep_merge(current, value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
