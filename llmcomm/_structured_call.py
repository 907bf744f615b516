"""Structured output around one call: validate a reply, ask again, then the next provider.

The policy takes the one-call function (`generate_response` without structured
output) as an argument, so it wraps a call without living inside the race:

1. The call goes out as any other (the fallback race picks the provider).
2. A reply that is not JSON or fails validation after a `stop` goes back to the
   provider that made it, with the validation errors, `output_retries` more
   times (default 1).
3. Then each next provider that can serve the call, in the configured order,
   gets the original conversation (and as many retries).
4. A reply cut by `max_tokens` (`finish_reason="length"`) raises at once: asking
   again would only be cut again. In the end, `OutputValidationError` with the
   last raw reply, its errors and the number of replies tried.

A reply that calls tools or is a refusal carries `parsed=None` and is not checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from ._errors import InvalidRequestError, LLMException, OutputValidationError
from ._structured import describe_errors
from ._types import LLMResponse, Message, Request

#: replies asked again of the same provider after an invalid one, unless `output_retries=` says
DEFAULT_OUTPUT_RETRIES: Final = 1

OneCall = Callable[..., Awaitable[LLMResponse]]


def with_parsed(request: Request, response: LLMResponse | None) -> LLMResponse | None:
    """`response` with `parsed` set from its text, when `request` has a `response_format`.

    Raises `OutputValidationError` (with the provider, request id and finish
    reason) when the text does not match.
    """
    fmt = request.response_format
    if fmt is None or response is None:
        return response
    if response.tool_calls or response.refusal or response.finish_reason in ("refusal", "content_filter"):
        return response
    try:
        value = fmt.parse(response.content)
    except OutputValidationError as exc:
        exc.provider = response.provider
        exc.request_id = request.request_id
        exc.finish_reason = response.finish_reason
        raise
    return dataclasses.replace(response, parsed=value)


def output_retries(value: object) -> int:
    """`output_retries=` checked: a whole number from 0 to 10."""
    if value is None:
        return DEFAULT_OUTPUT_RETRIES
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise InvalidRequestError(f"output_retries must be an int from 0 to 10, got {value!r}")
    return value


async def structured_response(
    call: OneCall,
    messages: object,
    options: dict[str, Any],
    order_of: Callable[[object, dict[str, Any]], Sequence[str]],
) -> LLMResponse:
    """The reply of `call(messages, **options)` whose text matches `options["response_format"]`.

    `order_of(messages, options)` names the providers that can serve the call,
    in the configured order (and raises `InvalidRequestError` for bad input,
    before any I/O). Raises `OutputValidationError` when no reply matched, or
    the call's own error when the first call fails otherwise.
    """
    options = dict(options)
    retries = output_retries(options.pop("output_retries", None))
    if options.get("response_format") is None:
        raise InvalidRequestError("output_retries is set but response_format is not; pass response_format=...")
    order = order_of(messages, options)
    base = _turns(messages)
    attempts = 1
    try:
        return await call(messages, **options)
    except OutputValidationError as exc:
        last = exc
    served = last.provider or ""
    candidates = [served]
    if options.get("provider") is None:  # a provider the caller named is the only one asked
        candidates += list(order[order.index(served) + 1 :] if served in order else ())
    for position, name in enumerate(candidates):
        if last.finish_reason == "length":
            break
        if position:
            attempts += 1
            try:
                return await call(base, **{**options, "provider": name})
            except OutputValidationError as exc:
                last = exc
            except LLMException:
                continue  # this provider cannot answer now: the next one may
        conversation = list(base)
        for _ in range(retries):
            if last.finish_reason == "length":
                break
            conversation += [Message("assistant", last.content or "(empty reply)"), _feedback(last)]
            attempts += 1
            try:
                return await call(conversation, **{**options, "provider": name})
            except OutputValidationError as exc:
                last = exc
            except LLMException:
                break
    last.attempts = attempts
    last.message = (
        f"{attempts} replies did not match the response_format: {describe_errors(last.errors)}; the last raw reply is "
        "in content: loosen the schema, raise max_tokens or output_retries, or try another model"
    )
    raise last


def _turns(messages: object) -> list[Any]:
    if isinstance(messages, str):
        return [Message("user", messages)]
    turns: list[Any] = list(messages)  # type: ignore[call-overload]
    return turns


def _feedback(error: OutputValidationError) -> Message:
    return Message(
        "user",
        f"Your reply did not match the required JSON schema: {describe_errors(error.errors)}. "
        "Reply again with only the corrected JSON value, nothing else.",
    )
