"""ROS 2 layer: the perception node, message <-> numpy codecs, point clouds, diagnostics.
The only package layer that imports rclpy."""
