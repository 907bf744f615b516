"""The legacy manager's prompt builders, word for word as the legacy application sent them.

`build_system_prompt` describes a role from `name`, `description`, `style` and
`focus_points`; `build_context_messages` gives the system prompt, the task as the
user's turn, then the last five history items, each mapped by its `speaker_role`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._service import LLMMessage

#: history items `build_context_messages` keeps (the most recent ones)
HISTORY_LIMIT: Final = 5

_SYSTEM_TEMPLATE: Final = (
    "你是{name}。\n"
    "\n"
    "角色描述：{description}\n"
    "发言风格：{style}\n"
    "关注点：{focus}\n"
    "\n"
    "请严格按照你的角色设定进行回复，保持角色的一致性和真实感。"
)
_TASK_TEMPLATE: Final = (
    "当前任务：\n"
    "任务类型：{task_type}\n"
    "任务描述：{description}\n"
    "对话主题：{topic}\n"
    "当前轮次：{round}\n"
    "已执行步数：{steps}\n"
    "\n"
    "请根据你的角色设定和当前任务，发表你的观点。"
)


def _field(item: object, key: str, default: object) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def system_prompt(role_info: Mapping[str, Any]) -> str:
    """The legacy system prompt for a role.

    Missing keys read as the legacy defaults: "AI助手", "无描述", "自然友好" and no focus points.
    """
    focus: Sequence[Any] = role_info.get("focus_points") or []
    return _SYSTEM_TEMPLATE.format(
        name=role_info.get("name", "AI助手"),
        description=role_info.get("description", "无描述"),
        style=role_info.get("style", "自然友好"),
        focus=", ".join(str(point) for point in focus),
    )


def task_prompt(task_info: Mapping[str, Any]) -> str:
    """The legacy user turn describing the current task."""
    return _TASK_TEMPLATE.format(
        task_type=task_info.get("task_type", "无"),
        description=task_info.get("description", "无"),
        topic=task_info.get("session_topic", "无"),
        round=task_info.get("current_round", 1),
        steps=task_info.get("step_count", 0),
    )


def context_messages(
    role_info: Mapping[str, Any], task_info: Mapping[str, Any], history: Sequence[Any] | None
) -> list[LLMMessage]:
    """System prompt, task, then the last `HISTORY_LIMIT` history items.

    A history item (a dict, or an object with the same attributes) whose
    `speaker_role` is the role's own `name` becomes an assistant turn with its
    `content`; any other becomes a user turn `"<speaker_role>: <content>"`.
    """
    messages = [LLMMessage("system", system_prompt(role_info)), LLMMessage("user", task_prompt(task_info))]
    own_name = role_info.get("name")
    for item in list(history or [])[-HISTORY_LIMIT:]:
        speaker = _field(item, "speaker_role", "未知角色")
        content = str(_field(item, "content", ""))
        if speaker == own_name:
            messages.append(LLMMessage("assistant", content))
        else:
            messages.append(LLMMessage("user", f"{speaker}: {content}"))
    return messages
