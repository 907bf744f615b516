"""Helpers for the tests that serve the example web apps: uvicorn in a thread, headless Chromium."""
