"""deployer's log lines (the -v request trace and warnings), written through structlog.

Importing structlog costs about a tenth of a second (it brings rich's pretty printer and
asyncio with it), a sixth of what a deploy spends before its first write. A run that logs
nothing, no -v and no warning, never imports it: a line below the level is dropped here,
and structlog is imported and configured when the first line passes.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_CONSOLE = "console"

# Until configure() is called (a library user, a test) every line passes, as with
# structlog's own defaults.
_level = logging.DEBUG
_format: str | None = None  # None: structlog's configuration is left as it is


def configure(verbose: bool, log_format: str = _CONSOLE) -> None:
    """Debug lines with -v, warnings always; ``log_format`` is "console" or "json"."""
    global _level, _format
    _level = logging.DEBUG if verbose else logging.WARNING
    _format = log_format
    if "structlog" in sys.modules:  # already paid for: configure it now
        _configure_structlog()


def reset() -> None:
    """Back to the state before configure() (for tests)."""
    global _level, _format
    _level, _format = logging.DEBUG, None


def enabled(level: int) -> bool:
    return level >= _level


def _configure_structlog() -> Any:
    import structlog

    global _format
    if _format is not None:
        renderer: Any = (structlog.processors.JSONRenderer() if _format == "json"
                         else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
        structlog.configure(
            processors=[structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso"), renderer],
            wrapper_class=structlog.make_filtering_bound_logger(_level),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
        _format = None
    return structlog


class Logger:
    """A named logger whose lines below the level cost one comparison."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, level: int, method: str, event: str, fields: dict[str, Any]) -> None:
        if level < _level:
            return
        structlog = _configure_structlog()
        getattr(structlog.get_logger(self.name), method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, "info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, "warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, "error", event, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)
