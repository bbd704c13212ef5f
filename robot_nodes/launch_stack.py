"""What the launch files share: the stack's launch arguments (which nodes run, with which models),
reading them back as graph keyword arguments, and a launch_ros Node for each graph.NodeSpec."""
from __future__ import annotations

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_nodes import graph

ROAD_SCENARIO_DESCRIPTION = ("scenario YAML whose road gives the driver's lanes in the odometry frame "
                             "(empty: the driver's parameter file's)")
"""The scenario argument where there is no simulated world, only its road (robot, Gazebo)."""


def perception_arguments(detector_description: str = "run the lidar detector") -> list[DeclareLaunchArgument]:
    """detector, detector_model, predictor, predictor_model."""
    return [
        DeclareLaunchArgument("detector", default_value="true", description=detector_description),
        DeclareLaunchArgument("detector_model", default_value="",
                              description="detector checkpoint (empty: config/lidar_detector.param.yaml's)"),
        DeclareLaunchArgument("predictor", default_value="true",
                              description="run the tracker and trajectory predictor on the detections"),
        DeclareLaunchArgument("predictor_model", default_value="",
                              description="prediction model (empty: config/trajectory_predictor.param.yaml's)"),
    ]


def driving_arguments(mixed_reality_scene_description: str, llm_description: str) -> list[DeclareLaunchArgument]:
    """planner, planning_rate, mixed_reality_scene, llm, llm_model."""
    return [
        DeclareLaunchArgument("planner", default_value="lane_keeping", choices=list(graph.PLANNERS),
                              description="what drives the robot: lane_keeping, or croa (needs detector and predictor)"),
        DeclareLaunchArgument("planning_rate", default_value="",
                              description="CROA planning cycles per second (empty: config/croa_planner.param.yaml's)"),
        DeclareLaunchArgument("mixed_reality_scene", default_value="", description=mixed_reality_scene_description),
        DeclareLaunchArgument("llm", default_value="false", choices=["true", "false"], description=llm_description),
        DeclareLaunchArgument("llm_model", default_value="",
                              description="Llama checkpoint for llm:=true (empty: config/onboard_llm.param.yaml's)"),
    ]


def _text(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def perception_options(context) -> dict:
    """The perception_arguments as graph keyword arguments (empty model paths: the parameter file's)."""
    return {"detector": _text(context, "detector").lower() == "true",
            "detector_model": _text(context, "detector_model") or None,
            "predictor": _text(context, "predictor").lower() == "true",
            "predictor_model": _text(context, "predictor_model") or None}


def driving_options(context) -> dict:
    """The driving_arguments as graph keyword arguments."""
    planning_rate = _text(context, "planning_rate")
    return {"planner": _text(context, "planner"),
            "planning_rate": float(planning_rate) if planning_rate else None,
            "mixed_reality_scene": _text(context, "mixed_reality_scene") or None,
            "llm": _text(context, "llm").lower() == "true",
            "llm_model": _text(context, "llm_model") or None}


def nodes(specs: list[graph.NodeSpec]) -> list[Node]:
    """One respawning Node per spec, with its parameter file, overrides and remappings."""
    return [Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
                 **graph.LAUNCH_RESPAWN,
                 parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))
            for spec in specs]
