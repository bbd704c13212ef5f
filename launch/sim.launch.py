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
from launch_ros.actions import Node

from robot_nodes import graph


def launch_nodes(context):
    scenario = LaunchConfiguration("scenario").perform(context)
    seed = int(LaunchConfiguration("seed").perform(context))
    real_time_factor = float(LaunchConfiguration("real_time_factor").perform(context))
    detector = LaunchConfiguration("detector").perform(context).lower() == "true"
    detector_model = LaunchConfiguration("detector_model").perform(context) or None
    predictor = LaunchConfiguration("predictor").perform(context).lower() == "true"
    predictor_model = LaunchConfiguration("predictor_model").perform(context) or None
    planner = LaunchConfiguration("planner").perform(context)
    planning_rate = LaunchConfiguration("planning_rate").perform(context)
    mixed_reality_scene = LaunchConfiguration("mixed_reality_scene").perform(context) or None
    llm = LaunchConfiguration("llm").perform(context).lower() == "true"
    llm_model = LaunchConfiguration("llm_model").perform(context) or None
    return [
        Node(package="edge_robot_runtime", executable=spec.executable, name=spec.name, output="screen",
             **graph.LAUNCH_RESPAWN,
             parameters=[str(spec.parameter_file), spec.parameters], remappings=list(spec.remappings))
        for spec in graph.simulation_graph(scenario, seed, real_time_factor, detector=detector,
                                           detector_model=detector_model, predictor=predictor,
                                           predictor_model=predictor_model, planner=planner,
                                           planning_rate=float(planning_rate) if planning_rate else None,
                                           mixed_reality_scene=mixed_reality_scene, llm=llm, llm_model=llm_model)
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("scenario", default_value="config/scenarios/urban_default.yaml",
                              description="scenario YAML (relative paths: from the package share directory)"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the simulated world"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="simulated seconds per wall second (0: as fast as possible)"),
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
                              description="Gaussian-splatting scene of this scenario and seed (build-gaussian-scene "
                                          "makes one); given, the mixed-reality uplink and its server run"),
        DeclareLaunchArgument("llm", default_value="false", choices=["true", "false"],
                              description="run the on-device language model (onboard_llm; off by default: about 14 s "
                                          "of start-up, and its variants must be built, 3-4 minutes the first time)"),
        DeclareLaunchArgument("llm_model", default_value="",
                              description="Llama checkpoint for llm:=true (empty: config/onboard_llm.param.yaml's)"),
        OpaqueFunction(function=launch_nodes),
    ])
