"""edge_robot_runtime: an ament_python package (colcon on a ROS distro; pip -e in .venv elsewhere)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "edge_robot_runtime"
LIBRARIES = ["robot_nodes", "perception", "planners", "mixed_reality", "onboard_llm", "sim", "evaluation", "training"]
NODES = {
    "sim_world": "robot_nodes.sim_world:main",
    "lane_keeping_controller": "robot_nodes.lane_keeping_controller:main",
    "bag_player": "robot_nodes.bag_player:main",
    "bag_recorder": "robot_nodes.bag_recorder:main",
    "lidar_detector": "robot_nodes.lidar_detector:main",
    "trajectory_predictor": "robot_nodes.trajectory_predictor:main",
    "croa_planner": "robot_nodes.croa_planner:main",
    "onboard_llm": "robot_nodes.onboard_llm:main",
    "gsrmr_uplink": "robot_nodes.gsrmr_uplink:main",
    "mr_server": "robot_nodes.mr_server:main",
}
COMMANDS = {
    "bringup": "robot_nodes.bringup:main",
    "edge-demo": "robot_nodes.main_job:main",
    "record-sim": "robot_nodes.record_sim:main",
    "kitti-to-bag": "robot_nodes.kitti_bag:main",
    "train-detector": "training.train_detector:main",
    "evaluate-detector": "evaluation.detector_report:main",
    "train-predictor": "training.train_predictor:main",
    "evaluate-predictor": "evaluation.prediction_report:main",
    "evaluate-tracker": "evaluation.tracking_report:main",
    "evaluate-croa": "evaluation.croa_report:main",
    "build-llm-variants": "onboard_llm.variants:main",
    "build-gaussian-scene": "training.gaussian_scene:main",
    "evaluate-gsrmr": "evaluation.gsrmr_report:main",
    "evaluate": "robot_nodes.evaluate:main",
    "compare-reports": "evaluation.compare_reports:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[f"{name}*" for name in LIBRARIES]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/scenarios", glob("config/scenarios/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="edge_robot_runtime maintainers",
    description="ROS 2 runtime for a robot's edge computer",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in {**NODES, **COMMANDS}.items()]},
)
