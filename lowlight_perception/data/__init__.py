"""Data layer: procedural scenes, relighting, degradations, datasets and image files."""
