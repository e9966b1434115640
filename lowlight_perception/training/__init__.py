"""Training: configuration presets and the two-stage LISU loop (torch required)."""
