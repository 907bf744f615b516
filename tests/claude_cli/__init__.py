"""Helpers for the Claude Code CLI provider tests: a fake executable and the real binary's installer."""
