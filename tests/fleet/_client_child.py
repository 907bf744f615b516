"""One worker of a fleet of clients, for tests/fleet/test_fleet_client.py.

`python _client_child.py REDIS_URL BACKEND BASE_URL MODE SEED [ARGS...]` opens an
`LLMCommunication` with `shared_state=REDIS_URL` on `BACKEND` (asyncio or trio), against
the fake server at `BASE_URL` (OpenAI wire), prints `{"ready": true}` once Redis answers,
reads the fleet's start (wall time) from stdin, runs MODE and prints one JSON line:

- `fallback SLOTS`: providers `primary` (model `bad-SEED`) and `backup` (model `good-SEED`);
  one call at each offset (s) of the JSON list SLOTS; answers `{"served": [...], "errors": [...]}`.
- `budget SECONDS`: one provider (model `rpm-SEED`, rpm=600); calls one after another for
  SECONDS; answers `{"ok": n, "limited": n, "errors": [...]}`.
- `once`: providers `limited` (model `limited-SEED`) and `backup`; one call; answers
  `{"outcomes": [[provider, outcome], ...]}`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio

from llmcomm import Configuration, LLMCommunication, LLMException, ProviderConfig, RateLimitError

KEY = "sk-fleet-client-0123456789"


def say(payload: object) -> None:
    print(json.dumps(payload), flush=True)


def configuration(url: str, base_url: str, mode: str, seed: str) -> Configuration:
    def provider(name: str, model: str, **options: Any) -> ProviderConfig:
        return ProviderConfig(name=name, kind="openai", model=model, base_url=base_url, api_key=KEY, **options)

    if mode == "budget":
        providers = [provider("only", f"rpm-{seed}", rpm=600)]
    elif mode == "once":
        providers = [provider("limited", f"limited-{seed}"), provider("backup", f"good-{seed}")]
    else:
        providers = [provider("primary", f"bad-{seed}"), provider("backup", f"good-{seed}")]
    return Configuration(
        providers=providers,
        shared_state=url,
        max_retries=0,
        cooldown_failures=3,
        cooldown_seconds=60.0,
        fallback_timeout=30.0,
        timeout=10.0,
    )


async def main(url: str, base_url: str, mode: str, seed: str, args: list[str]) -> None:
    async with LLMCommunication(configuration(url, base_url, mode, seed)) as llm:
        state: Any = llm.manager.cooldown.state
        say({"ready": await state.connect(10.0)})
        start = float(await anyio.to_thread.run_sync(sys.stdin.readline))
        await anyio.sleep(max(0.0, start - time.time()))
        if mode == "fallback":
            served: list[str] = []
            errors: list[str] = []
            for offset in json.loads(args[0])[:50]:
                await anyio.sleep(max(0.0, start + offset - time.time()))
                try:
                    served.append((await llm.generate_response("hi")).provider)
                except LLMException as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
            say({"served": served, "errors": errors})
        elif mode == "budget":
            ok = limited = 0
            errors = []
            for _ in range(2000):
                if time.time() >= start + float(args[0]):
                    break
                try:
                    await llm.generate_response("hi", timeout=2.0)
                    ok += 1
                except RateLimitError:
                    limited += 1
                except LLMException as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
            say({"ok": ok, "limited": limited, "errors": errors})
        else:
            response = await llm.generate_response("hi")
            say({"outcomes": [[a.provider, a.outcome] for a in response.attempts]})


if __name__ == "__main__":
    url, backend, base, what, seed_, *rest = sys.argv[1:]
    anyio.run(main, url, base, what, seed_, rest, backend=backend)
