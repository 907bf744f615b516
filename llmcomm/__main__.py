"""`python -m llmcomm` and the `llmcomm` command (see `llmcomm._cli`)."""

from __future__ import annotations

import sys

from ._cli import main as main

if __name__ == "__main__":
    sys.exit(main())
