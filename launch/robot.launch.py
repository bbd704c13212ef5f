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

from robot_nodes import graph, launch_stack


def launch_nodes(context):
    robot_topics = {contract_topic: LaunchConfiguration(argument).perform(context)
                    for argument, contract_topic in graph.ROBOT_TOPIC_ARGUMENTS.items()}
    return launch_stack.nodes(graph.robot_graph(
        robot_topics, scenario=LaunchConfiguration("scenario").perform(context) or None,
        **launch_stack.perception_options(context), **launch_stack.driving_options(context)))


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(argument, default_value=contract_topic,
                                description=f"the robot's topic that stands in for the contract's {contract_topic}")
          for argument, contract_topic in graph.ROBOT_TOPIC_ARGUMENTS.items()),
        DeclareLaunchArgument("scenario", default_value="", description=launch_stack.ROAD_SCENARIO_DESCRIPTION),
        *launch_stack.perception_arguments(),
        *launch_stack.driving_arguments(
            "Gaussian-splatting scene of the surroundings in the odometry frame; given, the mixed-reality uplink "
            "runs (its server runs remotely)",
            "run the on-device language model (onboard_llm; its variants must be built first: build-llm-variants)"),
        OpaqueFunction(function=launch_nodes),
    ])
