"""Logging set-up shared by the worker and cron scripts."""

from __future__ import annotations

import logging
import os


def configure(process: str) -> None:
    """Log to stderr with the process name, at LOG_LEVEL (default INFO)."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
