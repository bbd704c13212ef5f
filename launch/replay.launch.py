"""Replay a rosbag2 bag onto the topic contract with /clock, for nodes running with use_sim_time,
and run the lidar detector and the tracker/predictor on the replayed scans (the bag's own perception
outputs are then not played).

ros2 launch edge_robot_runtime replay.launch.py bag:=/path/to/bag rate:=1.0 loop:=false detector:=true
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_nodes import graph


def launch_nodes(context):
    specs = graph.replay_graph(LaunchConfiguration("bag").perform(context),
                               rate=float(LaunchConfiguration("rate").perform(context)),
                               loop=LaunchConfiguration("loop").perform(context).lower() == "true",
                               detector=LaunchConfiguration("detector").perform(context).lower() == "true",
                               detector_model=LaunchConfiguration("detector_model").perform(context) or None,
                               predictor=LaunchConfiguration("predictor").perform(context).lower() == "true",
                               predictor_model=LaunchConfiguration("predictor_model").perform(context) or None)
    return [Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
                 **graph.LAUNCH_RESPAWN,
                 parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))
            for spec in specs]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="bag folder to replay"),
        DeclareLaunchArgument("rate", default_value="1.0", description="replay speed factor"),
        DeclareLaunchArgument("loop", default_value="false", description="start again at the end"),
        DeclareLaunchArgument("detector", default_value="true",
                              description="run the lidar detector on the replayed scans"),
        DeclareLaunchArgument("detector_model", default_value="",
                              description="detector checkpoint (empty: config/lidar_detector.param.yaml's)"),
        DeclareLaunchArgument("predictor", default_value="true",
                              description="run the tracker and trajectory predictor on the detections"),
        DeclareLaunchArgument("predictor_model", default_value="",
                              description="prediction model (empty: config/trajectory_predictor.param.yaml's)"),
        OpaqueFunction(function=launch_nodes),
    ])
