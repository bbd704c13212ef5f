"""The conversions build messages that rclpy's own field checks accept.

rclpy checks every field assignment only when ROS_PYTHON_CHECK_FIELDS=1 is set before the message
modules are imported (off by default), so the round-trip tests run again in a fresh interpreter
with it set: a numpy scalar or wrong array type handed to a message would fail there.
"""
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUND_TRIP_MODULES = ["test_conversions_pointcloud.py", "test_conversions_image.py",
                      "test_conversions_geometry.py", "test_conversions_objects.py"]


def test_round_trips_pass_with_rclpy_field_checks_on() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "round_trip or make_transform",
         *(str(HERE / module) for module in ROUND_TRIP_MODULES)],
        env={**os.environ, "ROS_PYTHON_CHECK_FIELDS": "1"}, cwd=HERE.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
