"""Motion planners (no ROS): CROA occlusion-aware planning and its baselines."""
