"""Replay a rosbag2 bag onto the topic contract with /clock, for nodes running with use_sim_time.

ros2 launch edge_robot_runtime replay.launch.py bag:=/path/to/bag rate:=1.0 loop:=false
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_nodes import graph


def launch_nodes(context):
    spec = graph.bag_player(LaunchConfiguration("bag").perform(context),
                            rate=float(LaunchConfiguration("rate").perform(context)),
                            loop=LaunchConfiguration("loop").perform(context).lower() == "true")
    return [Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
                 parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="bag folder to replay"),
        DeclareLaunchArgument("rate", default_value="1.0", description="replay speed factor"),
        DeclareLaunchArgument("loop", default_value="false", description="start again at the end"),
        OpaqueFunction(function=launch_nodes),
    ])
