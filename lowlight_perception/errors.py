"""One error class per concern, so the CLI and the node can report a readable line."""


class LowlightError(Exception):
    """Base of every error lowlight_perception raises on purpose (bad input, bad config)."""


class ConfigError(LowlightError):
    """A configuration file or value is missing or invalid."""


class DatasetError(LowlightError):
    """A dataset directory, file or pair cannot be read or does not match."""


class BagError(LowlightError):
    """A bag cannot be written or read: bad path, unreadable storage, missing topics."""


def one_line(err: object, limit: int = 300) -> str:
    """An exception's (or any message's) text on one line, whitespace collapsed (TensorRT and
    parser messages span lines; an exception without text gives its type), cut to ``limit``
    characters: what a CLI error or a report field shows. The one such helper."""
    text = " ".join(str(err).split())
    if not text and isinstance(err, BaseException):
        text = type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a container stopping), raised where Ctrl-C would be, so
    every long command stops the same way: partial results written and marked incomplete."""


def stop_reason(err: KeyboardInterrupt) -> str:
    """How a stop is reported: the user's Ctrl-C, or a SIGTERM."""
    return "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted by the user"


def exit_status(err: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + signal number: 143 for SIGTERM, 130 for SIGINT."""
    return 143 if isinstance(err, Terminated) else 130
