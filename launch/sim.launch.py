"""The simulated world, its driver (the lane-keeping controller or the CROA planner), the lidar
detector, the tracker/predictor and, given a Gaussian-splatting scene of the world, the mixed-reality
uplink and its server and, with llm:=true, the on-device language model (the same nodes as `bringup`).

ros2 launch edge_robot_runtime sim.launch.py scenario:=config/scenarios/urban_default.yaml seed:=0
ros2 launch edge_robot_runtime sim.launch.py detector:=false   # without the detector (no trained model yet)
ros2 launch edge_robot_runtime sim.launch.py planner:=croa     # the CROA planner drives, on the predictions
build-gaussian-scene --scenario config/scenarios/urban_default.yaml --seed 0 --out out/urban_default_0.ply
ros2 launch edge_robot_runtime sim.launch.py mixed_reality_scene:=$PWD/out/urban_default_0.ply  # + GSRMR
ros2 launch edge_robot_runtime sim.launch.py llm:=true   # + the on-device language model (build-llm-variants first)
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from robot_nodes import graph, launch_stack


def launch_nodes(context):
    return launch_stack.nodes(graph.simulation_graph(
        LaunchConfiguration("scenario").perform(context), int(LaunchConfiguration("seed").perform(context)),
        float(LaunchConfiguration("real_time_factor").perform(context)),
        **launch_stack.perception_options(context), **launch_stack.driving_options(context)))


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("scenario", default_value="config/scenarios/urban_default.yaml",
                              description="scenario YAML (relative paths: from the package share directory)"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the simulated world"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="simulated seconds per wall second (0: as fast as possible)"),
        *launch_stack.perception_arguments(),
        *launch_stack.driving_arguments(
            "Gaussian-splatting scene of this scenario and seed (build-gaussian-scene makes one); given, the "
            "mixed-reality uplink and its server run",
            "run the on-device language model (onboard_llm; off by default: about 14 s of start-up, and its "
            "variants must be built, 3-4 minutes the first time)"),
        OpaqueFunction(function=launch_nodes),
    ])
