"""The measured subjects by name; each module is imported only by the process that measures it."""

from __future__ import annotations

import importlib

from .common import Subject

#: name -> (module, attribute), in the order of the report
SUBJECTS: dict[str, tuple[str, str]] = {
    "socket": ("benchmarks.subject_socket", "SUBJECT"),
    "raw-httpx2": ("benchmarks.subject_raw", "SUBJECT"),
    "llmcomm": ("benchmarks.subject_llmcomm", "SUBJECT"),
    "llmcomm-trio": ("benchmarks.subject_llmcomm", "TRIO"),
    "openai-sdk": ("benchmarks.subject_openai", "SUBJECT"),
    "anthropic-sdk": ("benchmarks.subject_anthropic", "SUBJECT"),
    "anthropic-sdk-helper": ("benchmarks.subject_anthropic", "HELPER"),
    "litellm": ("benchmarks.subject_litellm", "SUBJECT"),
}
FLOOR = "raw-httpx2"
SERVER = "socket"


def get_subject(name: str) -> Subject:
    """The subject called `name` (KeyError for an unknown one)."""
    module, attribute = SUBJECTS[name]
    subject = getattr(importlib.import_module(module), attribute)
    assert isinstance(subject, Subject)
    return subject


def available(name: str) -> bool:
    """Whether the subject's package is installed (only LiteLLM is optional)."""
    if name != "litellm":
        return True
    from .subject_litellm import available as litellm_available

    return litellm_available()
