"""On a robot (no simulation): the driver (the lane-keeping controller or the CROA planner), the lidar
detector, the tracker/predictor and, given a Gaussian-splatting scene of the surroundings, the robot
side of the mixed-reality uplink and, with llm:=true, the on-device language model, all on the
robot's clock (use_sim_time false). The robot's drivers publish its sensors on its own topics: the
*_topic arguments name them, and the nodes' inputs (and the driver's /cmd_vel) are remapped to them.
The mixed-reality server is the remote side and runs on the remote machine.

ros2 launch edge_robot_runtime robot.launch.py lidar_topic:=/velodyne_points odom_topic:=/odometry/filtered
ros2 launch edge_robot_runtime robot.launch.py planner:=croa scenario:=/path/to/site.yaml  # lanes of the site's road
ros2 launch edge_robot_runtime robot.launch.py camera_topic:=/camera/color/image_raw \
    camera_info_topic:=/camera/color/camera_info mixed_reality_scene:=/path/to/site.ply   # + the GSRMR uplink
ros2 launch edge_robot_runtime robot.launch.py llm:=true   # + the on-device language model (build-llm-variants first)
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_nodes import graph


def launch_nodes(context):
    robot_topics = {contract_topic: LaunchConfiguration(argument).perform(context)
                    for argument, contract_topic in graph.ROBOT_TOPIC_ARGUMENTS.items()}
    planning_rate = LaunchConfiguration("planning_rate").perform(context)
    specs = graph.robot_graph(
        robot_topics,
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
    return [Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
                 **graph.LAUNCH_RESPAWN,
                 parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))
            for spec in specs]


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(argument, default_value=contract_topic,
                                description=f"the robot's topic that stands in for the contract's {contract_topic}")
          for argument, contract_topic in graph.ROBOT_TOPIC_ARGUMENTS.items()),
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
                              description="Gaussian-splatting scene of the surroundings in the odometry frame; "
                                          "given, the mixed-reality uplink runs (its server runs remotely)"),
        DeclareLaunchArgument("llm", default_value="false", choices=["true", "false"],
                              description="run the on-device language model (onboard_llm; its variants must be "
                                          "built first: build-llm-variants)"),
        DeclareLaunchArgument("llm_model", default_value="",
                              description="Llama checkpoint for llm:=true (empty: config/onboard_llm.param.yaml's)"),
        OpaqueFunction(function=launch_nodes),
    ])
