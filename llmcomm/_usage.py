"""Token counts: `UsageInfo`, an immutable `dict[str, int]` that reads like the legacy usage dict."""

from __future__ import annotations

from typing import Any, final


def _read_only(self: UsageInfo, *args: object, **kwargs: object) -> None:
    raise TypeError("UsageInfo is immutable; build a new one instead")


@final
class UsageInfo(dict[str, int]):
    """Token counts reported by the provider: an immutable `dict[str, int]`.

    Its items are exactly the three legacy keys (`prompt_tokens`,
    `completion_tokens`, `total_tokens`), so it reads like the legacy usage dict and
    survives the standard `json.dumps`; the counts are attributes as well.
    `prompt_tokens` includes prompt-cache reads and writes, `completion_tokens`
    includes reasoning tokens; `cache_read_tokens`, `cache_write_tokens` and
    `reasoning_tokens` (attributes only, 0 when not reported) break them down.
    """

    __slots__ = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")

    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int

    def __init__(
        self,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        total_tokens: int = 0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        dict.__init__(self, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total_tokens)
        object.__setattr__(self, "cache_read_tokens", cache_read_tokens)
        object.__setattr__(self, "cache_write_tokens", cache_write_tokens)
        object.__setattr__(self, "reasoning_tokens", reasoning_tokens)

    @classmethod
    def of(
        cls,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> UsageInfo:
        """Usage whose total is the sum of the two counts."""
        return cls(
            prompt_tokens,
            completion_tokens,
            prompt_tokens + completion_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
        )

    @property
    def prompt_tokens(self) -> int:
        """Input tokens, cache reads and writes included."""
        return self["prompt_tokens"]

    @property
    def completion_tokens(self) -> int:
        """Output tokens, reasoning included."""
        return self["completion_tokens"]

    @property
    def total_tokens(self) -> int:
        """`prompt_tokens + completion_tokens` as the provider reported it."""
        return self["total_tokens"]

    def _fields(self) -> tuple[int, int, int, int, int, int]:
        return (
            self["prompt_tokens"],
            self["completion_tokens"],
            self["total_tokens"],
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )

    def __repr__(self) -> str:
        p, c, t, cr, cw, r = self._fields()
        extra = "".join(
            f", {name}={value}"
            for name, value in (("cache_read_tokens", cr), ("cache_write_tokens", cw), ("reasoning_tokens", r))
            if value
        )
        return f"UsageInfo(prompt_tokens={p}, completion_tokens={c}, total_tokens={t}{extra})"

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._fields())

    def __reduce__(self) -> tuple[Any, ...]:
        p, c, t, cr, cw, r = self._fields()
        return (_usage, (p, c, t, cr, cw, r))

    def __copy__(self) -> UsageInfo:
        return self

    def __deepcopy__(self, memo: object) -> UsageInfo:
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"UsageInfo is immutable; cannot set {name!r}")

    __delattr__ = __setattr__  # type: ignore[assignment]
    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only  # type: ignore[assignment]
    clear = _read_only
    pop = _read_only  # type: ignore[assignment]
    popitem = _read_only  # type: ignore[assignment]
    setdefault = _read_only  # type: ignore[assignment]
    update = _read_only


def _usage(p: int, c: int, t: int, cr: int, cw: int, r: int) -> UsageInfo:
    return UsageInfo(p, c, t, cache_read_tokens=cr, cache_write_tokens=cw, reasoning_tokens=r)
