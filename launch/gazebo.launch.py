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

from robot_nodes import graph


def launch_nodes(context):
    planning_rate = LaunchConfiguration("planning_rate").perform(context)
    specs = graph.gazebo_graph(
        scenario=LaunchConfiguration("scenario").perform(context) or None,
        detector=LaunchConfiguration("detector").perform(context).lower() == "true",
        detector_model=LaunchConfiguration("detector_model").perform(context) or None,
        predictor=LaunchConfiguration("predictor").perform(context).lower() == "true",
        predictor_model=LaunchConfiguration("predictor_model").perform(context) or None,
        planner=LaunchConfiguration("planner").perform(context),
        planning_rate=float(planning_rate) if planning_rate else None,
        mixed_reality_scene=LaunchConfiguration("mixed_reality_scene").perform(context) or None,
        llm=LaunchConfiguration("llm").perform(context).lower() == "true",
        llm_model=LaunchConfiguration("llm_model").perform(context) or None)
    bridge = graph.gz_bridge()
    return [Node(package=bridge.package, executable=bridge.executable, name=bridge.name, output="screen",
                 parameters=[bridge.parameters])] + [
        Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
             **graph.LAUNCH_RESPAWN,
             parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))
        for spec in specs]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("scenario", default_value="",
                              description="scenario YAML whose road gives the driver's lanes in the odometry frame "
                                          "(empty: the driver's parameter file's)"),
        DeclareLaunchArgument("detector", default_value="true", description="run the lidar detector"),
        DeclareLaunchArgument("detector_model", default_value="",
                              description="detector checkpoint (empty: config/lidar_detector.param.yaml's)"),
        DeclareLaunchArgument("predictor", default_value="true",
                              description="run the tracker and trajectory predictor on the detections"),
        DeclareLaunchArgument("predictor_model", default_value="",
                              description="prediction model (empty: config/trajectory_predictor.param.yaml's)"),
        DeclareLaunchArgument("planner", default_value="lane_keeping", choices=list(graph.PLANNERS),
                              description="what drives the robot: lane_keeping, or croa (needs detector and predictor)"),
        DeclareLaunchArgument("planning_rate", default_value="",
                              description="CROA planning cycles per second (empty: config/croa_planner.param.yaml's)"),
        DeclareLaunchArgument("mixed_reality_scene", default_value="",
                              description="Gaussian-splatting scene of the Gazebo world in the odometry frame; "
                                          "given, the mixed-reality uplink and its server run"),
        DeclareLaunchArgument("llm", default_value="false", choices=["true", "false"],
                              description="run the on-device language model (onboard_llm; its variants must be "
                                          "built first: build-llm-variants)"),
        DeclareLaunchArgument("llm_model", default_value="",
                              description="Llama checkpoint for llm:=true (empty: config/onboard_llm.param.yaml's)"),
        OpaqueFunction(function=launch_nodes),
    ])
