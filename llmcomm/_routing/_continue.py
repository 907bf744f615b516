"""A served stream that stopped or broke: going on with it elsewhere, or ending the call.

`stream_stopped` (a close, a deadline, the idle watchdog) and `stream_broke` (a
provider error mid-stream) end the call with its error, unless the call may go on
with another provider (`continue_on_interrupt=True`):

    serving ──the winner's stream breaks──► the next provider with `prefill` gets the same
                                            request plus an assistant turn holding the exact
                                            text delivered so far ──first progress──► serving
                                            (no such provider, or it fails: StreamInterruptedError)

Never by default and never silent: the continuing attempt is in `attempts` with
outcome "continued", the response says `continued=True`, and the observer hears a
fallback ("continue after N characters"). Only a text-only partial reply is
continued (no reasoning delivered, no tool or structured-output option), and only
on a provider that declares the `prefill` capability. Anthropic refuses a
prefill that ends in whitespace, so it receives the text without its trailing
whitespace, and the whitespace the consumer already has is not sent twice: the
continuation's leading whitespace is dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Final

import anyio

from .._capabilities import capabilities_of
from .._errors import LLMException, StreamInterruptedError
from .._types import ChunkBatch, Message
from ..providers._base import BaseProvider
from ._attempt import AttemptState, run_attempt
from ._guard import aclose_quietly, notify
from ._outcome import attempt_timed_out, call_timeout, closed_error, idle_timeout, interrupted

if TYPE_CHECKING:
    from ._call import Call

#: request options that make a reply more than text: such a reply is never continued
_NOT_TEXT_ONLY: Final = frozenset(("tools", "tool_choice", "response_format", "reasoning_effort", "thinking"))


def has_prefill(provider: BaseProvider) -> bool:
    """Whether `provider` declares the `prefill` capability (no kind has it by default)."""
    return "prefill" in capabilities_of(provider)


def _text_only(call: Call, broken: AttemptState) -> bool:
    if _NOT_TEXT_ONLY & call.request.extra.keys() or call.request.response_format is not None:
        return False
    return not any(chunk.reasoning for chunk in broken.first or ())


def _strip_leading(batch: ChunkBatch) -> ChunkBatch:
    """`batch` without the whitespace it starts with (chunks left empty are dropped unless they close)."""
    out: ChunkBatch = []
    stripping = True
    for chunk in batch:
        if stripping and chunk.text:
            text = chunk.text.lstrip()
            stripping = not text
            chunk = replace(chunk, text=text)
        if chunk.text or chunk.reasoning or chunk.finish_reason is not None or chunk.usage is not None:
            out.append(chunk)
    return out


def _closing(call: Call) -> bool:
    return call.cancel_requested


async def continue_call(call: Call, event: LLMException) -> bool:
    """Go on with `call`'s reply after its winner broke with `event`.

    True when the call has been dealt with: a new winner serves the rest (or the
    call was closed meanwhile, its error set); False when it cannot be continued
    and fails with `StreamInterruptedError` as before. Raises only cancellation
    and a provider's KeyboardInterrupt or SystemExit.
    """
    manager = call.manager
    broken = call.winner
    if not manager.continue_on_interrupt or broken is None or call.cancel_requested:
        return False
    text = call.text()
    tried = {a.provider.name for a in call.attempts if a.reason == "continue"} | {broken.provider.name}
    candidates = [p for p in call.providers if p.name not in tried and has_prefill(p)]
    if not text or not candidates or not _text_only(call, broken):
        return False
    await aclose_quietly(broken.batches)
    provider = candidates[0]
    prefill = text.rstrip() if getattr(provider, "kind", None) == "anthropic" else text
    request = replace(call.request, messages=(*call.request.messages, Message("assistant", prefill)))
    notify(
        call.observer.fallback,
        call.request,
        broken.provider.name,
        provider.name,
        f"continue after {len(text)} characters ({type(event).__name__})",
    )
    attempt = AttemptState(provider, "continue", call.clock())
    call.attempts.append(attempt)
    notify(call.observer.attempt_start, call.request, provider.name, provider.model, "fallback")
    with anyio.CancelScope(deadline=call.deadline) as scope:
        call.scope = scope
        await run_attempt(attempt, request, call.clock)
    call.scope = None
    if attempt.fatal is not None:
        raise attempt.fatal
    closing = _closing(call)  # set by a close from another task while the attempt ran
    if closing or scope.cancelled_caught or attempt.error is not None:
        if attempt.outcome is None:
            attempt.stop(call.clock())
        await aclose_quietly(attempt.batches)
        if closing:
            call.end_cancelled(closed_error(call.request.request_id))
            return True
        if attempt.error is not None:
            manager.cooldown.failure(provider.name, attempt.error)
            call.errors.append(attempt.error)
        return False
    manager.cooldown.success(provider.name)
    attempt.outcome = "continued"
    call.winner = attempt
    call.continued = True
    call.hard_deadline = min(call.deadline, attempt.deadline)
    first = attempt.first
    if first is not None:
        if len(prefill) < len(text):  # the consumer has the trailing whitespace already
            first = _strip_leading(first)
        call._remember(first)
        call.pending_first = first
    return True


async def stream_stopped(call: Call, deadline: float) -> None:
    """The served stream's read stopped at `deadline` or by a close: end the call, or go on elsewhere.

    A close ends it as closed; the call's deadline as `LLMTimeoutError`; the
    attempt's own timeout and the idle watchdog break the stream, which another
    provider may continue (`continue_on_interrupt`).
    """
    winner = call.winner
    assert winner is not None
    request_id = call.request.request_id
    name = winner.provider.name
    if call.cancel_requested:
        call.end_cancelled(closed_error(request_id))
    elif deadline >= call.deadline:
        call.fail(call_timeout(call.timeout, request_id, name))
    elif deadline >= winner.deadline:
        await stream_broke(call, attempt_timed_out(name, winner.deadline - winner.started))
        return
    else:
        idle = call.manager.stream_idle_timeout
        stall = StreamInterruptedError(f"no content for {idle:g} s", provider=name)
        winner.fail(stall, call.clock())
        if await continue_call(call, stall):
            return
        call.fail(idle_timeout(idle, name, call.text(), request_id))
    await aclose_quietly(winner.batches)


async def stream_broke(call: Call, event: LLMException, *, may_continue: bool = True) -> None:
    """The served stream broke with `event`: another provider goes on with it, or the call fails."""
    winner = call.winner
    assert winner is not None
    winner.fail(event, call.clock())
    if may_continue and await continue_call(call, event):
        return
    call.fail(interrupted(event, winner.provider.name, call.text(), call.request.request_id))
    await aclose_quietly(winner.batches)
