"""Each node runs alone as its own process with --ros-args overrides, and a start-up failure is
one clear line and exit code 2, not a traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2

from ros_domains import random_domain
from ros_helpers import spinning, wait_until


def node_command(executable: str) -> list[str]:
    path = shutil.which(executable)
    assert path, f"console script {executable} is not installed (scripts/bootstrap.sh installs it)"
    return [sys.executable, path]


def test_sim_world_runs_alone_with_overrides(context):
    environment = dict(os.environ, ROS_DOMAIN_ID=str(context.get_domain_id()))
    process = subprocess.Popen(
        node_command("sim_world") + ["--ros-args", "-p", "real_time_factor:=2.0", "-p", "camera_rate:=0.0",
                                     "-r", "~/output/pointcloud:=/alone/points"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener = Node("listener", context=context)
    clouds = []
    listener.create_subscription(PointCloud2, "/alone/points", clouds.append, qos_profile_sensor_data)
    try:
        with spinning(context, listener):
            assert wait_until(lambda: len(clouds) >= 2 or process.poll() is not None, timeout_s=60.0)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert len(clouds) >= 2, output
    assert clouds[0].header.frame_id == "lidar"


@pytest.mark.parametrize("executable, arguments, message", [
    ("sim_world", ["-p", "scenario:=/no/such/scenario.yaml"], "/no/such/scenario.yaml"),
    ("sim_world", ["-p", "physics_rate:=-5.0"], "physics_rate"),
    ("bag_player", ["-p", "bag:=/no/such/bag"], "/no/such/bag"),
    ("bag_recorder", [], "output is required"),
    ("lidar_detector", ["-p", "model_path:=/no/such/model.pt"], "/no/such/model.pt"),
    ("trajectory_predictor", ["-p", "model_path:=/no/such/model.onnx"], "/no/such/model.onnx"),
    ("trajectory_predictor", ["-p", "tracker.confirm_hits:=9"], "confirm_window"),
    ("trajectory_predictor", ["-p", "method:=psychic"], "method"),
    ("croa_planner", ["-p", "scenario:=/no/such/scenario.yaml"], "/no/such/scenario.yaml"),
    ("croa_planner", ["-p", "croa.solver:=OSQP"], "solver"),
])
def test_start_up_failures_are_one_clear_line(executable, arguments, message):
    environment = dict(os.environ, ROS_DOMAIN_ID=str(random_domain(first=1)))
    result = subprocess.run(node_command(executable) + ["--ros-args", *arguments], env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
