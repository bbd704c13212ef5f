"""CROA occlusion-aware planning: the planner, its scene types and the baselines (no ROS)."""
