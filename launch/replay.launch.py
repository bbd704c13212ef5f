"""Replay a rosbag2 bag onto the topic contract with /clock, for nodes running with use_sim_time,
and run the lidar detector and the tracker/predictor on the replayed scans (the bag's own perception
outputs are then not played).

ros2 launch edge_robot_runtime replay.launch.py bag:=/path/to/bag rate:=1.0 loop:=false detector:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from robot_nodes import graph, launch_stack


def launch_nodes(context):
    return launch_stack.nodes(graph.replay_graph(
        LaunchConfiguration("bag").perform(context), rate=float(LaunchConfiguration("rate").perform(context)),
        loop=LaunchConfiguration("loop").perform(context).lower() == "true",
        **launch_stack.perception_options(context)))


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="bag folder to replay"),
        DeclareLaunchArgument("rate", default_value="1.0", description="replay speed factor"),
        DeclareLaunchArgument("loop", default_value="false", description="start again at the end"),
        *launch_stack.perception_arguments(detector_description="run the lidar detector on the replayed scans"),
        OpaqueFunction(function=launch_nodes),
    ])
