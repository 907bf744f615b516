"""Benchmarks: llmcomm against the raw HTTP floor, the official SDKs and LiteLLM (see README.md)."""
