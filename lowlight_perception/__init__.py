"""lowlight_perception: semantic understanding of dark indoor scenes for ROS 2 robots."""

__version__ = "0.2.0"
