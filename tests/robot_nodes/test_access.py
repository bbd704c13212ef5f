"""Access, over real rclpy on loopback only: the stack talks on this host and on the configured ROS
domain; a participant on another domain, or one outside the discovery range, hears nothing and
reaches nothing; a bad domain id is refused at start; and DDS Security is not in the pip wheels'
Fast DDS (README, "Networking and security"): asking for it fails when the first node is created."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
from geometry_msgs.msg import Twist
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from robot_nodes import topics
from robot_nodes.bringup import Bringup
from robot_nodes.runner import StartupError, run_node
from ros_helpers import spinning, wait_until

REPO = Path(__file__).resolve().parents[2]
UNUSED_DOMAINS = range(201, 233)
"""Domains no other test joins (the shared fixtures take 1..200), so nothing else running on the
machine can be what the outsider hears."""
SILENCE_S = 2.0
"""Wall seconds a participant that must hear nothing listens after a participant that may hear has heard."""


def env_sh(**environment: str) -> dict[str, str]:
    """ROS_AUTOMATIC_DISCOVERY_RANGE and ROS_DOMAIN_ID after sourcing scripts/env.sh in a shell
    where only `environment` sets them."""
    shell = {name: value for name, value in os.environ.items()
             if name not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")} | environment
    printed = subprocess.run(["bash", "-c", "source scripts/env.sh && echo $ROS_AUTOMATIC_DISCOVERY_RANGE $ROS_DOMAIN_ID"],
                             cwd=REPO, env=shell, capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID"), printed))


def test_env_sh_keeps_the_stack_on_this_host_and_domain_0_unless_chosen_otherwise():
    assert env_sh() == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "0"}
    assert env_sh(ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", ROS_DOMAIN_ID="42") == {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_DOMAIN_ID": "42"}


def participant(monkeypatch, domain_id: int, discovery_range: str = "LOCALHOST") -> rclpy.Context:
    """A context of its own (one DDS participant) on `domain_id` with `discovery_range`."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", discovery_range)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    return context


class Robot(Node):
    """Stands in for the stack: publishes the lidar's scans, listens on /cmd_vel."""

    def __init__(self, context) -> None:
        super().__init__("robot", context=context)
        self.scans = self.create_publisher(PointCloud2, topics.LIDAR_POINTS, 10)
        self.commands: list[Twist] = []
        self.create_subscription(Twist, topics.CMD_VEL, self.commands.append, 10)
        self.create_timer(0.05, lambda: self.scans.publish(PointCloud2()))


class Peer(Node):
    """Another participant: listens to the scans, sends commands."""

    def __init__(self, context, name: str) -> None:
        super().__init__(name, context=context)
        self.scans: list[PointCloud2] = []
        self.create_subscription(PointCloud2, topics.LIDAR_POINTS, self.scans.append, 10)
        self.commands = self.create_publisher(Twist, topics.CMD_VEL, 10)
        self.create_timer(0.05, lambda: self.commands.publish(Twist()))


@pytest.mark.parametrize("outsider", ["another domain", "discovery off"])
def test_a_participant_on_another_domain_or_outside_the_range_neither_hears_nor_commands_the_stack(
        monkeypatch, context, outsider):
    domain = context.get_domain_id()
    assert domain not in UNUSED_DOMAINS
    outsider_context = (participant(monkeypatch, UNUSED_DOMAINS[secrets.randbelow(len(UNUSED_DOMAINS))])
                        if outsider == "another domain"
                        else participant(monkeypatch, domain, "OFF"))
    robot, neighbour, stranger = Robot(context), Peer(context, "neighbour"), Peer(outsider_context, "stranger")
    try:
        with spinning(context, robot, neighbour), spinning(outsider_context, stranger):
            assert wait_until(lambda: neighbour.scans and robot.commands)  # the same-domain, same-host peer is heard
            wait_until(lambda: stranger.scans, timeout_s=SILENCE_S)
            assert stranger.scans == []
            assert stranger.commands.get_subscription_count() == 0  # its commands reach no subscriber
    finally:
        outsider_context.try_shutdown()


def test_the_bringup_joins_the_environments_domain(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "57")
    bringup = Bringup([])
    try:
        assert bringup.context.get_domain_id() == 57
    finally:
        bringup.shutdown()


@pytest.mark.parametrize("domain_id", ["233", "abc", "-1"])
def test_a_bad_domain_id_is_refused_at_start_naming_the_variable(monkeypatch, domain_id):
    monkeypatch.setenv("ROS_DOMAIN_ID", domain_id)
    with pytest.raises(StartupError, match=rf"ROS_DOMAIN_ID='{domain_id}': the ROS domain id must be an integer 0\.\.232"):
        Bringup([])
    assert run_node(lambda: pytest.fail("no node may be created"), args=[]) == 2


def secure_environment(monkeypatch, keystore: Path, strategy: str) -> None:
    """rcl's security variables, as SROS2 sets them, pointing at `keystore`."""
    monkeypatch.setenv("ROS_SECURITY_ENABLE", "true")
    monkeypatch.setenv("ROS_SECURITY_STRATEGY", strategy)
    monkeypatch.setenv("ROS_SECURITY_KEYSTORE", str(keystore))


@pytest.mark.filterwarnings("ignore:Failed to fini rosout publisher")
def test_dds_security_is_not_in_the_pip_wheels_fast_dds_enforce_fails_at_the_first_node(monkeypatch, tmp_path):
    """When a wheel built with -DSECURITY=ON comes, this fails: then build the secured mode
    (README, "Networking and security")."""
    (tmp_path / "enclaves" / "robot").mkdir(parents=True)  # rcl looks only for the enclave's folder
    secure_environment(monkeypatch, tmp_path, "Enforce")
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--enclave", "/robot"])
    try:
        with pytest.raises(RCLError, match="This Fast DDS version doesn't have the security libraries"):
            rclpy.create_node("secured", context=context)
    finally:
        context.try_shutdown()
    header = (Path(sys.prefix) / "include/fastdds/config.hpp").read_text()
    assert "#define HAVE_SECURITY 0" in header


def test_permissive_security_without_a_keystore_runs_unsecured_and_a_plain_participant_hears_it(
        monkeypatch, context, tmp_path):
    secure_environment(monkeypatch, tmp_path / "no_keystore", "Permissive")
    permissive = rclpy.Context()
    rclpy.init(context=permissive, domain_id=context.get_domain_id(), args=["--ros-args", "--enclave", "/robot"])
    robot, plain = Robot(permissive), Peer(context, "plain")
    try:
        with spinning(permissive, robot), spinning(context, plain):
            assert wait_until(lambda: plain.scans and robot.commands)
    finally:
        permissive.try_shutdown()
