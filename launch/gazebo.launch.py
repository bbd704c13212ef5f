"""With Gazebo (gz-sim) instead of the embedded simulated world: ros_gz_bridge's parameter_bridge with
config/gz_bridge.yaml, which puts the Gazebo robot's lidar, camera, odometry, /tf, /tf_static and
/clock on the topic contract and takes /cmd_vel back, and the nodes of robot.launch.py on Gazebo's
clock (use_sim_time true); given a Gaussian-splatting scene of the world, the mixed-reality uplink and
its server, scoring the stream. Start Gazebo with the world first; config/gz_bridge.yaml says which
model, sensor and frame names it expects.

gz sim -r my_world.sdf   # first: a world "urban" with a model "robot" (not in this package; see config/gz_bridge.yaml)
ros2 launch edge_robot_runtime gazebo.launch.py scenario:=/path/to/urban_road.yaml   # the lanes of the world's road
ros2 launch edge_robot_runtime gazebo.launch.py planner:=croa     # the CROA planner drives, on the predictions
ros2 launch edge_robot_runtime gazebo.launch.py mixed_reality_scene:=/path/to/urban.ply  # + GSRMR
ros2 launch edge_robot_runtime gazebo.launch.py llm:=true   # + the on-device language model (build-llm-variants first)
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_nodes import graph, launch_stack


def launch_nodes(context):
    bridge = graph.gz_bridge()
    return [Node(package=bridge.package, executable=bridge.executable, name=bridge.name, output="screen",
                 parameters=[bridge.parameters]),
            *launch_stack.nodes(graph.gazebo_graph(
                scenario=LaunchConfiguration("scenario").perform(context) or None,
                **launch_stack.perception_options(context), **launch_stack.driving_options(context)))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("scenario", default_value="", description=launch_stack.ROAD_SCENARIO_DESCRIPTION),
        *launch_stack.perception_arguments(),
        *launch_stack.driving_arguments(
            "Gaussian-splatting scene of the Gazebo world in the odometry frame; given, the mixed-reality uplink "
            "and its server run",
            "run the on-device language model (onboard_llm; its variants must be built first: build-llm-variants)"),
        OpaqueFunction(function=launch_nodes),
    ])
