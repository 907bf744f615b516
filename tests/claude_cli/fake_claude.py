#!/usr/bin/env python3
"""A stand-in for the `claude` CLI that replays a scripted `stream-json` transcript.

It reads stdin to EOF (as the real CLI does in `-p` mode), checks its argv like the
real CLI would, optionally records what it got, then plays the scenario named by
`FAKE_CLAUDE_SCENARIO`:

    success            deltas, then a successful result (the default)
    api_error          a result with is_error true and api_error_status FAKE_CLAUDE_STATUS (401)
    interrupted        a few deltas, a line on stderr, exit 3 without a result
    garbage            non-JSON lines and unknown types around a successful reply
    oversized          one 2 MiB line, then a long sleep
    hang_after_result  a successful result, then a 60 s sleep
    crash              a few deltas, then SIGKILL on itself
    slow               sleeps FAKE_CLAUDE_DELAY (0.5 s) before the first delta
    stall              one delta, then a 60 s sleep without a result
    ignore_term        like stall, but SIGTERM is ignored
    grandchild         starts a sleeping child of its own, one delta, then a 60 s sleep
    result_differs     deltas that are the beginning of the result text
    result_replaced    deltas that say something else than the result text
    result_only        no deltas, only the result text
    stderr_flood       4 MiB on stderr, then a successful reply
    max_tokens         deltas, a message_delta with stop_reason max_tokens, then (as the real
                       CLI does) a hidden follow-up request streamed again and an error result
    usage_error        no stdout, FAKE_CLAUDE_STDERR (a usage error) on stderr, exit 1
    split_surrogate    an emoji's surrogate pair split over two deltas (raw JSON escapes)
    budget_stop        deltas, then the result the spending cap gives after one response:
                       subtype error_max_budget_usd, is_error true, no result text, zero usage
    image_note         the replayed user message has a text note in place of each image, then the reply
    thinking           three thinking_delta events and a signature_delta, then the reply
    lost_line          one delta line that no JSON parser takes, then a result with all the text

`FAKE_CLAUDE_TEXT` replaces the reply text (one delta per word). When
`FAKE_CLAUDE_COUNT` names a file, a line is appended to it at each start. When
`FAKE_CLAUDE_RECORD` names a file, argv, environment, stdin, pid and
`/proc/self/cmdline` are written there as JSON before anything else happens.
Only the standard library is used, so any `python3` runs it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

REQUIRED = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
REQUIRED_PAIRS = {"--tools": "", "--max-turns": "1", "--output-format": "stream-json", "--input-format": "stream-json"}
REQUIRED_FLAGS = ["--no-session-persistence", "--strict-mcp-config", "--model"]
SESSION = "00000000-0000-4000-8000-000000000000"
MODEL = "fake-model-1"


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raw(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def stream_event(event: dict[str, Any]) -> None:
    emit({"type": "stream_event", "event": event, "session_id": SESSION, "parent_tool_use_id": None})


def check_argv(argv: list[str]) -> str | None:
    for flag in REQUIRED + REQUIRED_FLAGS:
        if flag not in argv:
            return f"error: missing {flag}"
    for flag, value in REQUIRED_PAIRS.items():
        position = argv.index(flag) if flag in argv else -1
        if position < 0 or position + 1 >= len(argv) or argv[position + 1] != value:
            return f"error: {flag} must be followed by {value!r}"
    return None


def user_text(stdin: str) -> tuple[str, list[Any]]:
    """The text of the one `user` message of `--input-format stream-json` stdin, and its blocks."""
    lines = [json.loads(line) for line in stdin.splitlines() if line.strip()]
    users = [line for line in lines if line.get("type") == "user"]
    if len(users) != 1 or len(lines) != 1:
        raise SystemExit(f"error: expected one user message on stdin, got {stdin[:200]!r}")
    content = users[0]["message"]["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return "".join(block["text"] for block in blocks if block.get("type") == "text"), blocks


def system_prompt(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith("--system-prompt="):
            return arg.partition("=")[2]
        if arg == "--system-prompt":
            return argv[index + 1]
    return None


def record(argv: list[str], prompt: str, blocks: list[Any]) -> None:
    path = os.environ.get("FAKE_CLAUDE_RECORD")
    if not path:
        return
    with open("/proc/self/cmdline", "rb") as file:
        cmdline = file.read().decode("utf-8", "replace").split("\0")
    data = {
        "argv": argv,
        "env": dict(os.environ),
        "stdin": prompt,
        "blocks": blocks,
        "system": system_prompt(argv),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "cmdline": cmdline,
        "system_file": system_file(argv),
    }
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)  # readers never see half a record


def system_file(argv: list[str]) -> str | None:
    if "--system-prompt-file" not in argv:
        return None
    with open(argv[argv.index("--system-prompt-file") + 1], encoding="utf-8") as file:
        return file.read()


def opening(model: str) -> None:
    emit({"type": "system", "subtype": "ui_invalidate", "session_id": SESSION})
    emit({"type": "system", "subtype": "init", "model": model, "tools": [], "session_id": SESSION})
    emit({"type": "system", "subtype": "status", "status": "requesting", "session_id": SESSION})
    stream_event(
        {
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "usage": {"input_tokens": 11, "output_tokens": 1},
            },
        }
    )
    stream_event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})


def delta(text: str) -> None:
    stream_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})


def closing(text: str) -> None:
    emit({"type": "assistant", "message": {"model": MODEL, "content": [{"type": "text", "text": text}]}})
    stream_event({"type": "content_block_stop", "index": 0})
    stream_event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}})
    stream_event({"type": "message_stop"})


def result(text: str, *, is_error: bool = False, status: int | None = None) -> None:
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "api_error_status": status,
            "result": text,
            "stop_reason": "stop_sequence" if is_error else "end_turn",
            "terminal_reason": "api_error" if is_error else "completed",
            "total_cost_usd": 0 if is_error else 0.00042,
            "duration_ms": 12,
            "usage": {
                "input_tokens": 0 if is_error else 11,
                "cache_creation_input_tokens": 0 if is_error else 2,
                "cache_read_input_tokens": 0 if is_error else 3,
                "output_tokens": 0 if is_error else 5,
            },
            "session_id": SESSION,
        }
    )


def words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def reply(text: str) -> None:
    for word in words(text):
        delta(word)
    closing(text)
    result(text)


def main() -> int:
    argv = sys.argv[1:]
    if os.environ.get("FAKE_CLAUDE_COUNT"):
        with open(os.environ["FAKE_CLAUDE_COUNT"], "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()}\n")
    if os.environ.get("FAKE_CLAUDE_SCENARIO") == "usage_error":
        sys.stderr.write(os.environ.get("FAKE_CLAUDE_STDERR", "Error: Input contained only whitespace.") + "\n")
        return 1
    stdin = sys.stdin.read()  # to EOF: a caller that never closes stdin hangs here
    prompt, blocks = user_text(stdin)
    record(argv, prompt, blocks)
    problem = check_argv(argv)
    if problem:
        sys.stderr.write(problem + "\n")
        return 2
    scenario = os.environ.get("FAKE_CLAUDE_SCENARIO", "success")
    text = os.environ.get("FAKE_CLAUDE_TEXT", "Hello, world")
    delay = float(os.environ.get("FAKE_CLAUDE_DELAY", "0.5"))
    if "--replay-user-messages" in argv:  # the message as the CLI would send it
        if scenario == "image_note":
            note = {"type": "text", "text": "[Image could not be processed: Unable to resize image]"}
            blocks = [note if block.get("type") == "image" else block for block in blocks]
        emit({"type": "user", "message": {"role": "user", "content": blocks}, "session_id": SESSION})
    opening(argv[argv.index("--model") + 1])
    if scenario in ("success", "image_note"):
        reply(text)
    elif scenario == "api_error":
        status = int(os.environ.get("FAKE_CLAUDE_STATUS", "401"))
        key = os.environ.get("ANTHROPIC_API_KEY", "")
        message = f"API Error: {status} scripted error for key {key}"
        emit({"type": "assistant", "message": {"model": "<synthetic>", "content": [{"type": "text", "text": message}]}})
        result(message, is_error=True, status=status)
        return 1
    elif scenario == "interrupted":
        delta("Hello")
        delta(", ")
        sys.stderr.write("warning: something odd\nfatal: the connection to the API was lost\n")
        sys.stderr.flush()
        return 3
    elif scenario == "garbage":
        raw("this is not JSON")
        raw("[1, 2, 3]")
        emit({"type": "mystery", "payload": {"a": 1}})
        stream_event({"type": "ping"})
        stream_event({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}})
        stream_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}})
        stream_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 42}})
        emit({"type": "stream_event", "event": "not an object"})
        raw("{truncated")
        delta("Hello")
        raw("")
        emit({"type": "system", "subtype": "ui_invalidate"})
        delta(", world")
        closing(text)
        raw('{"type": "result", broken')
        result("Hello, world")
    elif scenario == "oversized":
        raw('{"type": "assistant", "pad": "' + "x" * (2 * 1024 * 1024) + '"}')
        time.sleep(60)
    elif scenario == "hang_after_result":
        reply(text)
        time.sleep(60)
    elif scenario == "crash":
        delta("Hello")
        delta(", ")
        os.kill(os.getpid(), signal.SIGKILL)
    elif scenario == "slow":
        time.sleep(delay)
        reply(text)
    elif scenario in ("stall", "ignore_term"):
        if scenario == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        delta("Hello")
        time.sleep(60)
    elif scenario == "grandchild":
        child = subprocess.Popen(["sleep", "60"])
        with open(os.environ["FAKE_CLAUDE_RECORD"] + ".child", "w", encoding="utf-8") as file:
            file.write(str(child.pid))
        delta("Hello")
        time.sleep(60)
    elif scenario == "result_differs":
        delta("Hello")
        result("Hello, world")
    elif scenario == "result_replaced":
        delta("Partial answer")
        result("A different answer")
    elif scenario == "result_only":
        result(text)
    elif scenario == "max_tokens":
        for word in words(text):
            delta(word)
        emit({"type": "assistant", "message": {"model": MODEL, "content": [{"type": "text", "text": text}]}})
        stream_event({"type": "content_block_stop", "index": 0})
        stream_event({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 7}})
        stream_event({"type": "message_stop"})
        time.sleep(0.2)  # the real CLI asks the API to continue here
        delta("AGAIN")
        result("exceeded the output token maximum", is_error=True)
        return 1
    elif scenario == "split_surrogate":
        for piece in ("smile ", "\\ud83d", "\\ude00", " done"):
            raw(
                '{"type":"stream_event","event":{"type":"content_block_delta","index":0,'
                '"delta":{"type":"text_delta","text":"' + piece + '"}}}'
            )
        closing(text)
        result("smile \U0001f600 done")
    elif scenario == "budget_stop":
        for word in words(text):
            delta(word)
        closing(text)
        emit(
            {
                "type": "result",
                "subtype": "error_max_budget_usd",
                "is_error": True,
                "stop_reason": "end_turn",
                "terminal_reason": "budget_exhausted",
                "total_cost_usd": 0.0001,
                "usage": {"output_tokens": 0},
            }
        )
        return 1
    elif scenario == "thinking":
        for piece in ("Two ", "and two ", "make four."):
            thinking = {"type": "thinking_delta", "thinking": piece}
            stream_event({"type": "content_block_delta", "index": 0, "delta": thinking})
        stream_event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}}
        )
        stream_event({"type": "content_block_stop", "index": 0})
        reply(text)
    elif scenario == "lost_line":
        delta("Hello")
        raw('{"type":"stream_event","event":{"type":"content_block_delta","delta":{"text":"lost')
        delta("!")
        closing(text)
        result("Hello, world!")
    elif scenario == "stderr_flood":
        for _ in range(4096):
            sys.stderr.write("x" * 1023 + "\n")
        sys.stderr.flush()
        reply(text)
    else:
        sys.stderr.write(f"unknown FAKE_CLAUDE_SCENARIO {scenario!r}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
