"""What each model accepts, in one place: how it thinks, whether it takes an effort setting,
and which sampling hints it takes.

Model ids are read by family and version (`claude-opus-4-6`, `claude-sonnet-5-5`,
`claude-3-7-sonnet-...`); an id this module does not know is taken to be a
current model.
"""

from __future__ import annotations

import re
from typing import Final, Literal

_CLAUDE: Final = re.compile(r"claude-(?:(?:opus|sonnet|haiku)-(\d+)(?:-(\d))?(?!\d)|(\d+)-(\d)-(?:opus|sonnet|haiku))")

#: thinking budgets (tokens) for models that take only `{"type": "enabled", "budget_tokens": N}`
THINKING_BUDGETS: Final = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32768}
MIN_THINKING_BUDGET: Final = 1024


def _claude_version(model: str) -> tuple[int, int] | None:
    match = _CLAUDE.search(model)
    if match is None:
        return None
    major, minor, old_major, old_minor = match.groups()
    if major is not None:
        return int(major), int(minor or 0)
    return int(old_major), int(old_minor)


def anthropic_thinking(model: str) -> Literal["adaptive", "enabled"]:
    """How a Claude model is asked to think: `adaptive` (4.6 and later, and unknown ids) or `enabled` with a budget."""
    version = _claude_version(model)
    return "adaptive" if version is None or version >= (4, 6) else "enabled"


def anthropic_takes_effort(model: str) -> bool:
    """Whether a Claude model takes `output_config.effort` (Opus 4.5, every 4.6 and later model)."""
    version = _claude_version(model)
    return version is None or version >= (4, 6) or (version == (4, 5) and "opus" in model)


def thinking_budget(effort: str, max_tokens: int) -> int:
    """A budget for `effort` that fits under `max_tokens` (at least the API's minimum)."""
    return max(MIN_THINKING_BUDGET, min(THINKING_BUDGETS.get(effort, 8192), max_tokens - 1))


#: OpenAI reasoning models, which refuse sampling options other than the defaults
_OPENAI_REASONING: Final = re.compile(r"(?:^|/)(?:o\d|gpt-5)")
#: the hint options a body may leave out (DESIGN Part 2: every other option is a requirement)
HINTS: Final = ("temperature", "top_p", "seed", "user")


def dropped_hints(kind: str | None, model: str, given: frozenset[str]) -> tuple[str, ...]:
    """Which of the hint options `given` a `kind` provider's `model` does not take (left out of its body).

    Anthropic has no `seed`; Claude 4.6 and later take no sampling options
    (`temperature`, `top_p`); OpenAI reasoning models (o-series, gpt-5) take none
    either. A model this module does not know is taken to accept them: leaving a
    hint out is done only where the model is known to refuse it.
    """
    refused: set[str] = set()
    if kind == "anthropic":
        refused.add("seed")
        version = _claude_version(model)
        if version is not None and version >= (4, 6):
            refused |= {"temperature", "top_p"}
    elif kind == "openai" and _OPENAI_REASONING.search(model):
        refused |= {"temperature", "top_p"}
    return tuple(name for name in HINTS if name in given and name in refused)
