"""Paired low-/normal-light RGB-D capture from Intel RealSense cameras (``lowlight capture``)."""
