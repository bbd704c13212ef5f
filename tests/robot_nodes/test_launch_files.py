"""Every launch file in launch/, run without launch_ros: fake `launch` and `launch_ros` modules record
what the real launch file code declares and starts, and the nodes it starts are checked against
setup.py's console scripts, the parameter files, the node configs and the topic contract; the
ros_gz_bridge configuration against the contract and what the Gazebo graph reads."""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml

from robot_nodes import graph, topics
from robot_nodes.bag_player import BagPlayerConfig
from robot_nodes.croa_planner import CroaPlannerNodeConfig
from robot_nodes.gsrmr_uplink import GsrmrUplinkConfig
from robot_nodes.lane_keeping_controller import LaneKeepingNodeConfig
from robot_nodes.lidar_detector import LidarDetectorConfig
from robot_nodes.mr_server import MrServerConfig
from robot_nodes.onboard_llm import OnboardLlmConfig
from robot_nodes.parameters import config_from_parameter_file
from robot_nodes.sim_messages import SimWorldConfig
from robot_nodes.trajectory_predictor import TrajectoryPredictorConfig

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
GZ_BRIDGE_CONFIG = REPO / "config" / "gz_bridge.yaml"
CONFIGS = {"sim_world": SimWorldConfig, "lane_keeping_controller": LaneKeepingNodeConfig,
           "croa_planner": CroaPlannerNodeConfig, "lidar_detector": LidarDetectorConfig,
           "trajectory_predictor": TrajectoryPredictorConfig, "gsrmr_uplink": GsrmrUplinkConfig,
           "mr_server": MrServerConfig, "onboard_llm": OnboardLlmConfig, "bag_player": BagPlayerConfig}
"""Executable → the config dataclass its node declares (declare_config)."""
OPERATOR_INPUTS = {topics.PLANNER_TARGET_ID, topics.LLM_QUESTION}
"""Contract topics the nodes read that an operator or a mission node publishes, not the robot or Gazebo."""
EVERYTHING = {"planner": "croa", "planning_rate": "5.0", "mixed_reality_scene": "/scenes/site.ply", "llm": "true",
              "llm_model": "/models/llm.gguf", "detector_model": "/models/detector.pt",
              "predictor_model": "/models/predictor.onnx", "scenario": "/site/road.yaml"}
"""Launch arguments that start every optional node of robot.launch.py and gazebo.launch.py, and override
every parameter they can."""
ROBOT_TOPICS = {"lidar_topic": "/velodyne_points", "camera_topic": "/camera/color/image_raw",
                "camera_info_topic": "/camera/color/camera_info", "odom_topic": "/odometry/filtered",
                "tf_static_topic": "/robot/tf_static", "cmd_vel_topic": "/base/cmd_vel"}
"""A robot's own topic names, one for each of robot.launch.py's topic arguments."""

LAUNCHES = [
    ("sim.launch.py", {}),
    ("sim.launch.py", {"detector": "false"}),
    ("sim.launch.py", {**EVERYTHING, "scenario": "config/scenarios/urban_default.yaml", "seed": "3"}),
    ("replay.launch.py", {"bag": "/no/such/bag"}),
    ("replay.launch.py", {"bag": "/no/such/bag", "detector": "false"}),
    ("robot.launch.py", {}),
    ("robot.launch.py", EVERYTHING),
    ("robot.launch.py", {**EVERYTHING, **ROBOT_TOPICS}),
    ("gazebo.launch.py", {}),
    ("gazebo.launch.py", EVERYTHING),
]
"""(launch file, launch arguments given): representative runs of every launch file."""


class Recorded:
    """A fake launch action or description: keeps what it was made with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class FakeLaunchConfiguration:
    """launch.substitutions.LaunchConfiguration: the argument's value in the context."""

    def __init__(self, name: str):
        self.name = name

    def perform(self, context) -> str:
        """The value given for the argument, else its default (as launch's context holds them)."""
        return context.launch_configurations[self.name]


def fake_launch_modules() -> dict[str, types.ModuleType]:
    """`launch` and `launch_ros` modules with the names the launch files import, recording their arguments."""
    modules = {name: types.ModuleType(name) for name in
               ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions")}
    modules["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    modules["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (Recorded,), {})
    modules["launch.actions"].OpaqueFunction = type("OpaqueFunction", (Recorded,), {})
    modules["launch.substitutions"].LaunchConfiguration = FakeLaunchConfiguration
    modules["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    return modules


def run_launch_file(monkeypatch, file_name: str, arguments: dict[str, str]) -> tuple[dict, list[dict]]:
    """The launch file's declared arguments (name → DeclareLaunchArgument keywords) and the keywords of
    every Node its OpaqueFunction starts given `arguments`, the rest at their defaults."""
    for name, module in fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(file_name.replace(".", "_"), REPO / "launch" / file_name)
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    (entities,) = launch_file.generate_launch_description().args
    declared = {entity.args[0]: entity.kwargs for entity in entities if type(entity).__name__ == "DeclareLaunchArgument"}
    assert set(arguments) <= set(declared), f"{file_name} does not declare {set(arguments) - set(declared)}"
    values = {name: declaration["default_value"] for name, declaration in declared.items()
              if "default_value" in declaration}
    values.update(arguments)
    for name, declaration in declared.items():
        assert declaration.get("description"), f"{file_name}: argument {name} has no description"
        assert name in values, f"{file_name}: argument {name} has no default and was not given"
        assert values[name] in declaration.get("choices", [values[name]])
    opaque_functions = [entity for entity in entities if type(entity).__name__ == "OpaqueFunction"]
    assert len(opaque_functions) == 1
    context = types.SimpleNamespace(launch_configurations=values)
    return declared, [node.kwargs for node in opaque_functions[0].kwargs["function"](context)]


def setup_nodes() -> dict[str, str]:
    """setup.py's NODES: console script → entry point of every node."""
    for statement in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(statement, ast.Assign) and [target.id for target in statement.targets] == ["NODES"]:
            return ast.literal_eval(statement.value)
    raise AssertionError("setup.py has no NODES")


def leaf_parameter_names(config_cls: type, prefix: str = "") -> set[str]:
    """The dotted parameter names declare_config declares for a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    names = set()
    for config_field in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints[config_field.name]):
            names |= leaf_parameter_names(hints[config_field.name], f"{prefix}{config_field.name}.")
        else:
            names.add(prefix + config_field.name)
    return names


def our_nodes(nodes: list[dict]) -> list[dict]:
    """The launched nodes of this package (not ros_gz_bridge's)."""
    return [node for node in nodes if node["package"] == "edge_robot_runtime"]


def bridge_entries() -> list[dict]:
    """config/gz_bridge.yaml's topic entries."""
    return yaml.safe_load(GZ_BRIDGE_CONFIG.read_text())


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda path: path.name)
def test_the_launch_file_parses_and_is_tested_here(launch_file):
    tree = ast.parse(launch_file.read_text(), filename=str(launch_file))
    assert {"generate_launch_description", "launch_nodes"} <= {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert ast.get_docstring(tree) and f"ros2 launch edge_robot_runtime {launch_file.name}" in ast.get_docstring(tree)
    assert launch_file.name in {file_name for file_name, _ in LAUNCHES}


@pytest.mark.parametrize("file_name, arguments", LAUNCHES, ids=[f"{name}-{i}" for i, (name, _) in enumerate(LAUNCHES)])
def test_the_launched_nodes_name_real_executables_files_parameters_and_contract_topics(monkeypatch, file_name,
                                                                                     arguments):
    _, nodes = run_launch_file(monkeypatch, file_name, arguments)
    robot_topics = {value for name, value in arguments.items() if name in graph.ROBOT_TOPIC_ARGUMENTS}
    executables = setup_nodes()
    assert our_nodes(nodes)
    for node in our_nodes(nodes):
        assert node["executable"] in executables and node["name"] == node["executable"]
        parameter_file, overrides = node["parameters"]
        assert Path(parameter_file).is_file() and Path(parameter_file).name == f"{node['name']}.param.yaml"
        config_cls = CONFIGS[node["executable"]]
        assert set(overrides) - {"use_sim_time"} <= leaf_parameter_names(config_cls), node["name"]
        # Unknown names, bad types or out-of-range values in the file with the overrides would raise here.
        config_from_parameter_file(config_cls, Path(parameter_file), node["name"],
                                   {name: value for name, value in overrides.items() if name != "use_sim_time"})
        for private, public in node["remappings"]:
            assert private.startswith("~/")
            assert public in topics.CONTRACT or public in robot_topics, (node["name"], private, public)


@pytest.mark.parametrize("file_name, use_sim_time", [("sim.launch.py", True), ("robot.launch.py", False),
                                                     ("gazebo.launch.py", True)])
def test_the_nodes_run_on_the_simulated_clock_except_on_a_robot(monkeypatch, file_name, use_sim_time):
    _, nodes = run_launch_file(monkeypatch, file_name, EVERYTHING)
    clocked = [node for node in our_nodes(nodes) if node["name"] != "sim_world"]  # the world publishes /clock
    assert clocked and all(node["parameters"][1]["use_sim_time"] is use_sim_time for node in clocked)


@pytest.mark.parametrize("file_name, arguments", LAUNCHES, ids=[f"{name}-{i}" for i, (name, _) in enumerate(LAUNCHES)])
def test_every_launched_node_of_ours_is_respawned_after_a_delay_a_bounded_number_of_times(monkeypatch, file_name,
                                                                                       arguments):
    _, nodes = run_launch_file(monkeypatch, file_name, arguments)
    for node in our_nodes(nodes):
        assert node["respawn"] is True, node["name"]
        assert 0.0 < node["respawn_delay"] <= 60.0 and node["respawn_max_retries"] >= 1, node["name"]


def test_the_robot_launch_remaps_the_contract_to_the_robots_own_topics_exactly_as_given(monkeypatch):
    declared, on_contract = run_launch_file(monkeypatch, "robot.launch.py", EVERYTHING)
    for argument, contract_topic in graph.ROBOT_TOPIC_ARGUMENTS.items():
        assert declared[argument]["default_value"] == contract_topic
    _, on_robot = run_launch_file(monkeypatch, "robot.launch.py", {**EVERYTHING, **ROBOT_TOPICS})
    robot_topic_of = {graph.ROBOT_TOPIC_ARGUMENTS[argument]: topic for argument, topic in ROBOT_TOPICS.items()}
    moved = set()
    for contract_node, robot_node in zip(on_contract, on_robot, strict=True):
        assert contract_node["name"] == robot_node["name"]
        for (private, public), (robot_private, robot_public) in zip(contract_node["remappings"],
                                                                   robot_node["remappings"], strict=True):
            assert robot_private == private
            assert robot_public == robot_topic_of.get(public, public)
            moved |= {public} & set(robot_topic_of)
    assert moved == set(robot_topic_of)  # every argument reaches a node
    drivers = [node["name"] for node in on_robot if ("~/output/cmd_vel", ROBOT_TOPICS["cmd_vel_topic"]) in
               node["remappings"]]
    assert drivers == ["croa_planner"]


def test_the_robot_runs_the_gazebo_nodes_but_the_remote_mixed_reality_server(monkeypatch):
    _, on_robot = run_launch_file(monkeypatch, "robot.launch.py", EVERYTHING)
    _, with_gazebo = run_launch_file(monkeypatch, "gazebo.launch.py", EVERYTHING)
    bridges = [node for node in with_gazebo if node["package"] == "ros_gz_bridge"]
    assert [(node["executable"], node["name"]) for node in bridges] == [("parameter_bridge", "gz_bridge")]
    assert Path(bridges[0]["parameters"][0]["config_file"]) == GZ_BRIDGE_CONFIG
    names = [node["name"] for node in our_nodes(with_gazebo)]
    assert names == ["croa_planner", "lidar_detector", "trajectory_predictor", "gsrmr_uplink", "onboard_llm",
                     "mr_server"]
    assert [node["name"] for node in on_robot] == names[:-1]
    for robot_node, gazebo_node in zip(on_robot, our_nodes(with_gazebo)):
        assert robot_node["remappings"] == gazebo_node["remappings"]
        assert {**robot_node["parameters"][1], "use_sim_time": True} == gazebo_node["parameters"][1]


def test_the_gz_bridge_puts_the_contracts_types_on_the_contracts_topics():
    entries = bridge_entries()
    assert len({entry["ros_topic_name"] for entry in entries}) == len(entries)
    for entry in entries:
        assert topics.CONTRACT[entry["ros_topic_name"]] == entry["ros_type_name"], entry["ros_topic_name"]
        assert entry["direction"] == ("ROS_TO_GZ" if entry["ros_topic_name"] == topics.CMD_VEL else "GZ_TO_ROS")


@pytest.mark.parametrize("graph_function", [graph.robot_graph, graph.gazebo_graph], ids=lambda function: function.__name__)
def test_the_gz_bridge_brings_every_input_from_outside_the_graph_and_takes_its_commands(graph_function):
    specs = graph_function(planner="croa", mixed_reality_scene="/scenes/site.ply", llm=True)
    inputs = {public for spec in specs for private, public in spec.remappings if private.startswith("~/input/")}
    outputs = {public for spec in specs for private, public in spec.remappings if private.startswith("~/output/")}
    from_gazebo = {entry["ros_topic_name"] for entry in bridge_entries() if entry["direction"] == "GZ_TO_ROS"}
    to_gazebo = {entry["ros_topic_name"] for entry in bridge_entries() if entry["direction"] == "ROS_TO_GZ"}
    assert inputs - outputs - OPERATOR_INPUTS <= from_gazebo
    assert topics.TF_STATIC in inputs and topics.CLOCK in from_gazebo  # the mounts; the clock of use_sim_time
    assert outputs & to_gazebo == {topics.CMD_VEL}


def test_the_gz_bridge_publishes_the_sensor_mounts_as_their_subscribers_expect():
    bridge = graph.gz_bridge()
    assert (bridge.package, bridge.executable) == ("ros_gz_bridge", "parameter_bridge")
    assert Path(bridge.parameters["config_file"]) == GZ_BRIDGE_CONFIG
    # The predictor and the uplink subscribe to the mounts transient local (latched).
    assert bridge.parameters[f"qos_overrides.{topics.TF_STATIC}.publisher.durability"] == "transient_local"
