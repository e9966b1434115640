"""One error class per concern, so the CLI and the node can report a readable line."""


class LowlightError(Exception):
    """Base of every error lowlight_perception raises on purpose (bad input, bad config)."""


class ConfigError(LowlightError):
    """A configuration file or value is missing or invalid."""


class DatasetError(LowlightError):
    """A dataset directory, file or pair cannot be read or does not match."""
