"""Shared test set-up: the repository root on sys.path so the libraries import from a clean clone."""
import sys
from pathlib import Path

import pytest

from ros_domains import random_domain

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(autouse=True)
def isolated_ros_domain(monkeypatch):
    """Every test on a random ROS domain, localhost only: graphs a test starts in its own contexts
    (bringup, the main job) do not hear another test's, a benchmark's or a robot's running beside."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random_domain(first=101)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture
def context(monkeypatch):
    """A fresh rclpy context on a random domain with localhost-only discovery, so tests running at
    the same time on one machine do not hear each other."""
    import rclpy

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random_domain(first=1))
    yield context
    context.try_shutdown()
