"""Logging: the `llmcomm` logger tree, request ids on records, redaction, JSON, the legacy file.

llmcomm logs to the `llmcomm` logger and its children, which have only a
`NullHandler`: the application decides where lines go. What llmcomm offers for
that decision:

- `RequestIdFilter` puts `record.request_id` on every record (from the call's
  context), so `%(request_id)s` works in any format string;
- `RedactingFilter` masks API keys, URL credentials and auth headers in
  messages, arguments, extra fields and tracebacks (the rule of `_secrets`);
- `JSONFormatter` writes one JSON object per line (with orjson);
- `enable_legacy_log_file()` opens the legacy dedicated LLM log file.

Structured fields travel through `extra`: `request_id`, `provider`, `model`,
`attempt`, `outcome`, `response_time`, `time_to_first_token`, `prompt_tokens`,
`completion_tokens`, `total_tokens`, `error_type`, `status_code`, `delay`,
`to_provider`, `reason`, `event`. Prompts and replies appear (as `prompt` and
`reply`) only when `LLMCOMM_LOG_CONTENT=1`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, final

import orjson

from .._secrets import MIN_SECRET_LENGTH
from .._secrets import redact as redact
from ._context import current_request_id

LOGGER_NAME: Final = "llmcomm"
DEFAULT_LEGACY_LOG_FILE: Final = "logs/llm_requests.log"
#: well-known variables whose values a `RedactingFilter` masks unless told otherwise
SECRET_ENV_VARS: Final = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
_FALSE = frozenset({"0", "false", "no", "off", ""})
_TRUE = frozenset({"1", "true", "yes", "on"})

logger = logging.getLogger(LOGGER_NAME)

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD_ATTRS: Final = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName", "request_id"}
)


def _install() -> None:
    # Only a NullHandler: where lines go is the application's choice. The filter
    # gives records logged on `llmcomm` itself their request id.
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    if not any(isinstance(f, RequestIdFilter) for f in logger.filters):
        logger.addFilter(RequestIdFilter())


def get_logger(name: str) -> logging.Logger:
    """The logger `name` (a child of `llmcomm`), with a `RequestIdFilter` on it."""
    child = logging.getLogger(name)
    if not any(isinstance(f, RequestIdFilter) for f in child.filters):
        child.addFilter(RequestIdFilter())
    return child


def content_logging_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `LLMCOMM_LOG_CONTENT` asks for prompts and replies in the logs."""
    env = os.environ if environ is None else environ
    return env.get("LLMCOMM_LOG_CONTENT", "").strip().lower() in _TRUE


@final
class RequestIdFilter(logging.Filter):
    """Sets `record.request_id` from the llmcomm call running in the record's context.

    A record that already has one (through `extra`) keeps it. Put this filter on
    a handler to give every record it handles a `request_id` (`default` when
    there is none), so `%(request_id)s` can be used in its format string.
    """

    def __init__(self, default: str | None = None) -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or self.default
        return True


@final
class RedactingFilter(logging.Filter):
    """Masks secrets in every record it sees; put it on a handler.

    Masks the given `secrets` (configured API keys, say), the values of the
    well-known key variables (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, … when
    `from_env`), credentials in URLs (`http://user:password@host`, `?api-key=…`),
    anything that looks like `x-api-key: …`, `Authorization: Bearer …` or an
    `sk-…` key, in the message and its arguments, in string `extra` fields and in
    the traceback. A masked key shows at most its first 3 and last 4 characters.
    """

    def __init__(self, secrets: Iterable[str | None] = (), *, from_env: bool = True) -> None:
        super().__init__()
        found = [s for s in secrets if s]
        if from_env:
            found += [v for name in SECRET_ENV_VARS if (v := os.environ.get(name))]
        # Longest first, so a key that contains another is masked whole; short values would mask plain words.
        self.secrets: tuple[str, ...] = tuple(
            sorted({s for s in found if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        )

    def add_secret(self, secret: str | None) -> None:
        """Mask `secret` from now on too."""
        if secret and len(secret) >= MIN_SECRET_LENGTH and secret not in self.secrets:
            self.secrets = tuple(sorted((*self.secrets, secret), key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the formatter's to report
            message = None
        if message is not None:
            clean = redact(message, secrets)
            if clean != message:
                record.msg, record.args = clean, None
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                clean = redact(value, secrets)
                if clean != value:
                    record.__dict__[key] = clean
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


@final
class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object (orjson): time, level, logger, message,
    request_id, every `extra` field, and the traceback as `exc_info`.

    `static_fields` are added to every object (service name, environment, …).
    """

    def __init__(self, *, static_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.static_fields = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = dict(self.static_fields)
        data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        data["level"] = record.levelname
        data["logger"] = record.name
        data["message"] = record.getMessage()
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            data["request_id"] = request_id
        data.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def layer_of(record: logging.LogRecord) -> str:
    """The legacy layer name of a record: its `layer` extra, else one from what logged it.

    A call's own lines (they carry an `event`) are the manager's, as the legacy
    application's manager logged them; the core records no legacy names itself.
    """
    layer = getattr(record, "layer", None)
    if isinstance(layer, str) and layer:
        return layer.upper()
    if getattr(record, "event", None):
        return "MANAGER"
    name = record.name
    if ".providers" in name:
        return "PROVIDER"
    if name.endswith("legacy"):
        return "SERVICE"
    if name.endswith("hooks"):
        return "HOOK"
    return "CLIENT"


@final
class LegacyFormatter(logging.Formatter):
    """The legacy LLM log line: `<time> - <LEVEL> - [LLM-REQ-ID: <id>] <LAYER>_LAYER - <message>`.

    The request id is `-` when a record belongs to no call.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s - %(levelname)s - %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id() or "-"
        saved = record.message
        record.message = f"[LLM-REQ-ID: {request_id}] {layer_of(record)}_LAYER - {saved}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved


@final
class _LegacyFileHandler(logging.FileHandler):
    """The handler `enable_legacy_log_file()` adds; told apart from the application's own."""


def enable_legacy_log_file(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    level: int = logging.INFO,
    secrets: Iterable[str | None] = (),
) -> logging.Handler | None:
    """Write llmcomm's log lines to the legacy dedicated LLM log file, as the legacy service did.

    Honours `ENABLE_LLM_SPECIAL_LOG` (default true; `0`/`false`/`no`/`off` turn the
    file off, and then nothing happens and None is returned) and `LLM_LOG_FILE`
    (default `logs/llm_requests.log`) unless `path` is given. Lines look like
    `2024-05-01 12:00:00,000 - INFO - [LLM-REQ-ID: LLM-…] CLIENT_LAYER - …`, with
    keys redacted. Records of `level` and above are written; the `llmcomm` logger
    is lowered to `level` when it would drop them. Calling it again for the same
    file returns the handler already installed. Nothing touches the disk until this
    is called. Returns the handler; `disable_legacy_log_file()` removes it.
    """
    env = os.environ if environ is None else environ
    if path is None:
        if env.get("ENABLE_LLM_SPECIAL_LOG", "true").strip().lower() in _FALSE:
            return None
        path = env.get("LLM_LOG_FILE") or DEFAULT_LEGACY_LOG_FILE
    target = Path(path).expanduser().resolve()
    for handler in logger.handlers:
        if isinstance(handler, _LegacyFileHandler) and Path(handler.baseFilename) == target:
            return handler
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = _LegacyFileHandler(target, encoding="utf-8", delay=True)
    handler.setLevel(level)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(LegacyFormatter())
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    return handler


def disable_legacy_log_file() -> None:
    """Remove and close every handler `enable_legacy_log_file()` added."""
    for handler in list(logger.handlers):
        if isinstance(handler, _LegacyFileHandler):
            logger.removeHandler(handler)
            handler.close()


_install()
