"""The libraries never import ROS: they must stay usable and testable without it."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ["perception", "planners", "mixed_reality", "onboard_llm", "sim", "evaluation", "training"]
ROS_MODULES = {"rclpy", "rosidl_runtime_py", "launch", "launch_ros", "std_msgs", "geometry_msgs", "sensor_msgs",
               "nav_msgs", "visualization_msgs", "rosgraph_msgs", "builtin_interfaces", "tf2_msgs",
               "edge_robot_msgs", "robot_nodes"}


def imported_top_level_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


LIBRARY_FILES = sorted(path for library in LIBRARIES for path in (REPO / library).rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_library_does_not_import_ros(path):
    assert imported_top_level_modules(path).isdisjoint(ROS_MODULES)


def test_libraries_were_found():
    assert any(path.parent.name == "sim" for path in LIBRARY_FILES)
