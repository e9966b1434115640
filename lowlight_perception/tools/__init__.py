"""Command-line tools (the `lowlight` entry point)."""
