"""A Flask back end that calls the legacy API the way the MRC application does.

Its two legacy modules became `from llmcomm.legacy import *`; the handlers below
keep the application's habits: the module-level instances imported by name, a
brand-new event loop per request (set as the thread's loop, closed afterwards),
`usage` returned through `jsonify`, success decided with
`startswith("调用失败")` and API errors told by their `API错误` prefix, and
`provider` taken from the request body as the client sent it.

Reload this module after changing the environment: the instances are bound at import.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from llmcomm.legacy import LLMMessage, LLMResponse, llm_manager, simple_llm_service

app = Flask(__name__)

#: what the application's performance monitor records per call: (provider, success, api_error)
monitor: list[tuple[str, bool, bool]] = []
_monitor_lock = threading.Lock()


def _record(provider: str, content: str) -> tuple[bool, bool]:
    success = not content.startswith("调用失败")  # the application's own check
    api_error = content.split(":", 1)[0].endswith("API错误")
    with _monitor_lock:
        monitor.append((provider, success, api_error))
    return success, api_error


def _run_manager(provider: Any, messages: list[LLMMessage], request_id: str) -> LLMResponse:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(
            llm_manager.generate_response(provider=provider, messages=messages, request_id=request_id)
        )
    finally:
        loop.close()


@app.post("/api/llm/chat")
def chat() -> ResponseReturnValue:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or "message" not in data:
        return jsonify({"success": False, "error_code": "INVALID_REQUEST"}), 400
    message = str(data["message"]).strip()
    if not message:
        return jsonify({"success": False, "error_code": "EMPTY_MESSAGE"}), 400
    messages = [
        LLMMessage(role=item.get("role", "user"), content=item["content"])
        for item in data.get("history", [])
        if isinstance(item, dict) and item.get("content")
    ]
    messages.append(LLMMessage(role="user", content=message))
    request_id = f"LLM-{int(time.time() * 1000)}-{threading.get_ident() % 0xFFFFFFFF:08x}"
    response = _run_manager(data.get("provider"), messages, request_id)
    success, api_error = _record(response.provider, response.content)
    return jsonify(
        {
            "success": True,
            "data": {
                "response": response.content,
                "model": response.model,
                "usage": response.usage,
                "response_time": response.response_time,
                "provider": response.provider,
            },
            "llm_success": success,
            "llm_api_error": api_error,
        }
    )


@app.post("/api/llm/simple")
def simple() -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    text = simple_llm_service.simple_llm(str(data.get("message", "")))
    return jsonify({"text": text, "ok": not text.startswith(("调用失败", "API错误"))})


@app.get("/api/llm/chat")
def info() -> ResponseReturnValue:
    return jsonify(
        {
            "available_providers": llm_manager.list_available_providers(),
            "provider_info": llm_manager.get_provider_info(),
        }
    )


@app.get("/api/llm/health")
def health() -> ResponseReturnValue:
    healthy = llm_manager.health_check()
    return jsonify({"healthy": healthy, "provider_info": llm_manager.get_provider_info()})
