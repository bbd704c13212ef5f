"""Multi-object tracking: an EKF with a constant-turn-rate-and-velocity model per object and gated
Hungarian association within class groups (numpy and scipy, no ROS)."""
from perception.tracking.config import CLASS_GROUPS, ClassModel, TrackerConfig
from perception.tracking.tracker import MultiObjectTracker, TrackerCounters, TrackerInputError

__all__ = ["CLASS_GROUPS", "ClassModel", "TrackerConfig", "MultiObjectTracker", "TrackerCounters",
           "TrackerInputError"]
