"""The simulated world and the lane-keeping controller (the same nodes as `bringup`).

ros2 launch edge_robot_runtime sim.launch.py scenario:=config/scenarios/urban_default.yaml seed:=0
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_nodes import graph


def launch_nodes(context):
    scenario = LaunchConfiguration("scenario").perform(context)
    seed = int(LaunchConfiguration("seed").perform(context))
    real_time_factor = float(LaunchConfiguration("real_time_factor").perform(context))
    return [
        Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
             parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))
        for spec in graph.simulation_graph(scenario, seed, real_time_factor)
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("scenario", default_value="config/scenarios/urban_default.yaml",
                              description="scenario YAML (relative paths: from the package share directory)"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the simulated world"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="simulated seconds per wall second (0: as fast as possible)"),
        OpaqueFunction(function=launch_nodes),
    ])
