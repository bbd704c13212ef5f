"""The node graph, described once: launch files (launch_ros, on a robot) and the pip-only bringup
(one process, composed nodes) both build their nodes from these specs, so they run the same node
set with the same parameter files and remappings."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from robot_nodes import topics
from robot_nodes.paths import share_path


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph."""

    name: str
    """Node name; its parameter file is config/<name>.param.yaml."""
    executable: str
    """Console script that runs the node alone (ros2 run edge_robot_runtime <executable>)."""
    node_class: str
    """'module:Class' of the rclpy Node, for composing nodes in one process."""
    remappings: tuple[tuple[str, str], ...] = ()
    """Private topic → contract topic."""
    parameters: dict = field(default_factory=dict, hash=False)
    """Parameter values that override the file (e.g. from launch arguments)."""

    @property
    def parameter_file(self) -> Path:
        return share_path("config", f"{self.name}.param.yaml")

    def ros_arguments(self) -> list[str]:
        """The --ros-args that give this node its file, overrides and remappings."""
        arguments = ["--ros-args", "--params-file", str(self.parameter_file)]
        for name, value in self.parameters.items():
            arguments += ["-p", f"{name}:={_ros_literal(value)}"]
        for private, public in self.remappings:
            arguments += ["-r", f"{private}:={public}"]
        return arguments

    def create(self, **node_options):
        """An instance of the node in this process (rclpy must be initialised)."""
        module_name, class_name = self.node_class.split(":")
        node_class = getattr(importlib.import_module(module_name), class_name)
        return node_class(cli_args=self.ros_arguments(), **node_options)


LAUNCH_RESPAWN = {"respawn": True, "respawn_delay": 2.0, "respawn_max_retries": 5}
"""launch_ros Node arguments of every node of ours the launch files start (on a robot, one process per
node): a node process that exits is started again after respawn_delay seconds, at most
respawn_max_retries times (launch has a fixed delay, no back-off; the pip bringup's RestartPolicy
doubles it). A respawned process starts afresh from its parameters: unlike in the bringup, the
tracker's ids start at 1 again (it logs its start, and its tracks start afresh)."""


def _ros_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


def sim_world(scenario: str | None = None, seed: int | None = None, real_time_factor: float | None = None,
              wait_for_subscribers: float | None = None, wait_for_command: float | None = None,
              lockstep_acknowledgements: list[str] | None = None) -> NodeSpec:
    """The simulated world; with `lockstep_acknowledgements` ('topic:sensor', see
    LockstepConfig) it runs in lockstep with them."""
    overrides = {"scenario": scenario, "seed": seed, "real_time_factor": real_time_factor,
                 "wait_for_subscribers": wait_for_subscribers, "wait_for_command": wait_for_command}
    if lockstep_acknowledgements is not None:
        overrides |= {"lockstep.enabled": True, "lockstep.acknowledgements": list(lockstep_acknowledgements)}
    return NodeSpec(
        name="sim_world", executable="sim_world", node_class="robot_nodes.sim_world:SimWorldNode",
        remappings=(("~/output/pointcloud", topics.LIDAR_POINTS), ("~/output/image", topics.CAMERA_IMAGE),
                    ("~/output/camera_info", topics.CAMERA_INFO), ("~/output/odom", topics.ODOMETRY),
                    ("~/output/ground_truth", topics.GROUND_TRUTH_OBJECTS), ("~/input/cmd_vel", topics.CMD_VEL)),
        parameters={name: value for name, value in overrides.items() if value is not None})


def lane_keeping_controller(scenario: str | None = None, lockstep: bool = False,
                            use_sim_time: bool = True) -> NodeSpec:
    """The lane-keeping driver; with `lockstep`, one command per odometry message."""
    return NodeSpec(
        name="lane_keeping_controller", executable="lane_keeping_controller",
        node_class="robot_nodes.lane_keeping_controller:LaneKeepingControllerNode",
        remappings=(("~/input/odom", topics.ODOMETRY), ("~/output/cmd_vel", topics.CMD_VEL)),
        parameters={"use_sim_time": use_sim_time, **({"scenario": scenario} if scenario else {}),
                    **({"lockstep": True} if lockstep else {})})


def croa_planner(scenario: str | None = None, planning_rate: float | None = None, lockstep: bool = False,
                 use_sim_time: bool = True) -> NodeSpec:
    """The CROA planner on the contract's predictions and odometry, driving the robot (/cmd_vel);
    with `lockstep`, one plan per predictions message and one command per odometry message."""
    # In lockstep a wall-time budget would make plans depend on the machine's speed: the longest one allowed.
    overrides = {"scenario": scenario, "planning_rate": planning_rate, "lockstep": True if lockstep else None,
                 "croa.time_budget": 60.0 if lockstep else None}
    return NodeSpec(
        name="croa_planner", executable="croa_planner", node_class="robot_nodes.croa_planner:CroaPlannerNode",
        remappings=(("~/input/predicted_objects", topics.PREDICTED_OBJECTS), ("~/input/odometry", topics.ODOMETRY),
                    ("~/input/target_id", topics.PLANNER_TARGET_ID), ("~/output/path", topics.PLANNED_PATH),
                    ("~/output/cmd_vel", topics.CMD_VEL), ("~/output/markers", topics.CROA_PLANNER_MARKERS),
                    ("~/output/status", topics.CROA_PLANNER_STATUS)),
        parameters={"use_sim_time": use_sim_time, **{name: value for name, value in overrides.items() if value is not None}})


DRIVER_START_S = 10.0
"""The world of a simulation graph waits up to this many wall seconds for its driver's first command."""

PLANNERS = ("lane_keeping", "croa")
"""What drives the simulated robot: the lane-keeping controller, or the CROA planner (which needs
the detector and the predictor). Exactly one of them publishes /cmd_vel."""


def driver(planner: str = "lane_keeping", scenario: str | None = None,
           planning_rate: float | None = None, lockstep: bool = False, use_sim_time: bool = True) -> NodeSpec:
    """The node that publishes /cmd_vel for `planner` (one of PLANNERS)."""
    if planner not in PLANNERS:
        raise ValueError(f"planner must be one of {', '.join(PLANNERS)}, got {planner!r}")
    if planner == "lane_keeping":
        return lane_keeping_controller(scenario, lockstep, use_sim_time)
    return croa_planner(scenario, planning_rate, lockstep, use_sim_time)


def bag_recorder(output: str, topic_names: list[str], use_sim_time: bool = False) -> NodeSpec:
    """A recorder; with use_sim_time the bag's timestamps are simulated time, as the stack sees it.
    Restarted, it records on into `<output>_2` (existing_output "next")."""
    return NodeSpec(
        name="bag_recorder", executable="bag_recorder", node_class="robot_nodes.bag_recorder:BagRecorderNode",
        parameters={"output": output, "existing_output": "next", "topics": list(topic_names),
                    "use_sim_time": use_sim_time})


def lidar_detector(model_path: str | None = None, use_sim_time: bool = True, repeatable: bool = False) -> NodeSpec:
    """The lidar detector on the contract's scans; model_path overrides the parameter file's; with
    `repeatable`, one network thread (the same detections on every run)."""
    return NodeSpec(
        name="lidar_detector", executable="lidar_detector", node_class="robot_nodes.lidar_detector:LidarDetectorNode",
        remappings=(("~/input/pointcloud", topics.LIDAR_POINTS), ("~/output/objects", topics.DETECTED_OBJECTS),
                    ("~/output/markers", topics.LIDAR_DETECTOR_MARKERS)),
        parameters={"use_sim_time": use_sim_time, **({"model_path": model_path} if model_path else {}),
                    **({"threads": 1} if repeatable else {})})


def trajectory_predictor(model_path: str | None = None, use_sim_time: bool = True) -> NodeSpec:
    """Tracker and predictor on the contract's detections; model_path overrides the parameter file's."""
    return NodeSpec(
        name="trajectory_predictor", executable="trajectory_predictor",
        node_class="robot_nodes.trajectory_predictor:TrajectoryPredictorNode",
        remappings=(("~/input/objects", topics.DETECTED_OBJECTS), ("~/input/odometry", topics.ODOMETRY),
                    ("~/input/tf_static", topics.TF_STATIC), ("~/output/tracks", topics.TRACKED_OBJECTS),
                    ("~/output/predicted_objects", topics.PREDICTED_OBJECTS),
                    ("~/output/markers", topics.TRAJECTORY_PREDICTOR_MARKERS)),
        parameters={"use_sim_time": use_sim_time, **({"model_path": model_path} if model_path else {})})


def bag_player(bag: str, rate: float = 1.0, loop: bool = False, topic_names: list[str] | None = None,
               wait_for_nodes: list[str] | None = None) -> NodeSpec:
    """A player of the bag; topic_names (None or empty: every topic of the bag) selects what it
    plays; it starts once `wait_for_nodes` subscribe to all of them (up to WAIT_FOR_NODES_S)."""
    return NodeSpec(
        name="bag_player", executable="bag_player", node_class="robot_nodes.bag_player:BagPlayerNode",
        parameters={"bag": bag, "rate": rate, "loop": loop, **({"topics": list(topic_names)} if topic_names else {}),
                    **({"wait_for_nodes": list(wait_for_nodes), "wait_for_subscribers_s": WAIT_FOR_NODES_S}
                       if wait_for_nodes else {})})


WAIT_FOR_NODES_S = 30.0
"""Wall seconds a player waits for the nodes it must wait for (a recorder subscribes to each topic
once the graph shows its publisher: seconds after start on a busy machine)."""


def gsrmr_uplink(scene: str, use_sim_time: bool = True) -> NodeSpec:
    """The robot side of the mixed-reality uplink on the contract's camera, with the Gaussian-splatting scene file."""
    return NodeSpec(
        name="gsrmr_uplink", executable="gsrmr_uplink", node_class="robot_nodes.gsrmr_uplink:GsrmrUplinkNode",
        remappings=(("~/input/image", topics.CAMERA_IMAGE), ("~/input/camera_info", topics.CAMERA_INFO),
                    ("~/input/odometry", topics.ODOMETRY), ("~/input/tf_static", topics.TF_STATIC),
                    ("~/output/decision", topics.UPLINK_DECISION), ("~/output/uplink", topics.UPLINK_IMAGE),
                    ("~/output/pose", topics.UPLINK_POSE), ("~/output/camera_info", topics.UPLINK_CAMERA_INFO)),
        parameters={"use_sim_time": use_sim_time, "model_path": scene})


def mr_server(scene: str, evaluate: bool = True) -> NodeSpec:
    """The remote side: shows uploads or renders the scene at the sent poses; with `evaluate`, scores
    every shown frame against the contract's camera image."""
    return NodeSpec(
        name="mr_server", executable="mr_server", node_class="robot_nodes.mr_server:MrServerNode",
        remappings=(("~/input/uplink", topics.UPLINK_IMAGE), ("~/input/pose", topics.UPLINK_POSE),
                    ("~/input/camera_info", topics.UPLINK_CAMERA_INFO), ("~/input/true_image", topics.CAMERA_IMAGE),
                    ("~/output/stream", topics.MR_STREAM), ("~/output/quality", topics.MR_STREAM_QUALITY)),
        parameters={"use_sim_time": True, "model_path": scene, "evaluate": evaluate})


def onboard_llm(model_path: str | None = None, cache_dir: str | None = None, use_sim_time: bool = True) -> NodeSpec:
    """The on-device language model, grounded in the contract's detections, predictions and plan
    status; its Ask action is the node's own `~/ask` (topics.LLM_ASK_ACTION). model_path and
    cache_dir (where the built variants are) override the parameter file's."""
    overrides = {"model_path": model_path, "cache_dir": cache_dir}
    return NodeSpec(
        name="onboard_llm", executable="onboard_llm", node_class="robot_nodes.onboard_llm:OnboardLlmNode",
        remappings=(("~/input/question", topics.LLM_QUESTION), ("~/output/answer", topics.LLM_ANSWER),
                    ("~/output/answer_records", topics.LLM_ANSWER_RECORDS),
                    ("~/input/detected_objects", topics.DETECTED_OBJECTS),
                    ("~/input/predicted_objects", topics.PREDICTED_OBJECTS),
                    ("~/input/planner_status", topics.CROA_PLANNER_STATUS)),
        parameters={"use_sim_time": use_sim_time, **{name: value for name, value in overrides.items() if value is not None}})


MIXED_REALITY_OUTPUTS = (topics.UPLINK_DECISION, topics.UPLINK_IMAGE, topics.UPLINK_POSE, topics.UPLINK_CAMERA_INFO,
                         topics.MR_STREAM_QUALITY)
"""What the mixed-reality nodes publish that a run records (not the shown stream: it is the camera's
images again, at a quarter of the pixels)."""


PLANNER_OUTPUTS = (topics.PLANNED_PATH, topics.CROA_PLANNER_MARKERS, topics.CROA_PLANNER_STATUS)
"""Topics the CROA planner publishes on the contract besides /cmd_vel."""

PERCEPTION_OUTPUTS = (topics.DETECTED_OBJECTS, topics.LIDAR_DETECTOR_MARKERS, topics.TRACKED_OBJECTS,
                      topics.PREDICTED_OBJECTS, topics.TRAJECTORY_PREDICTOR_MARKERS)
"""Topics the detector and the predictor publish on the contract (a replay that runs them leaves them out)."""


def recorded_topics(specs: list[NodeSpec]) -> list[str]:
    """What a run of these nodes records: the simulated world's topics, every node's statistics and
    the outputs of the nodes among `specs` (not markers, not the remote stream: derived, and large)."""
    running = {spec.name for spec in specs}
    outputs = {"lidar_detector": [topics.DETECTED_OBJECTS],
               "trajectory_predictor": [topics.TRACKED_OBJECTS, topics.PREDICTED_OBJECTS],
               "croa_planner": [topics.PLANNED_PATH, topics.CROA_PLANNER_STATUS],
               "gsrmr_uplink": list(MIXED_REALITY_OUTPUTS),
               "onboard_llm": [topics.LLM_QUESTION, topics.LLM_ANSWER, topics.LLM_ANSWER_RECORDS]}
    return topics.SIMULATED_SENSOR_TOPICS + [topics.NODE_STATISTICS] + [
        topic for name, published in outputs.items() if name in running for topic in published]


def perception_nodes(detector_model: str | None = None, predictor: bool = True,
                     predictor_model: str | None = None, use_sim_time: bool = True,
                     repeatable: bool = False) -> list[NodeSpec]:
    """The lidar detector and (with `predictor`) the tracker and predictor on its objects."""
    return [lidar_detector(detector_model, use_sim_time, repeatable)] + (
        [trajectory_predictor(predictor_model, use_sim_time)] if predictor else [])


def lockstep_acknowledgements(planner: str, detector: bool, predictor: bool, mixed_reality: bool) -> list[str]:
    """What the world waits for in lockstep ('topic:sensor'): each step's command, and each scan's
    detections, predictions and plan status, each camera frame's uplink decision and scored stream."""
    acknowledgements = [f"{topics.CMD_VEL}:odometry"]
    acknowledgements += [f"{topics.DETECTED_OBJECTS}:lidar"] if detector else []
    acknowledgements += [f"{topics.PREDICTED_OBJECTS}:lidar"] if detector and predictor else []
    acknowledgements += [f"{topics.CROA_PLANNER_STATUS}:lidar"] if planner == "croa" else []
    acknowledgements += [f"{topics.UPLINK_DECISION}:camera", f"{topics.MR_STREAM_QUALITY}:camera"] if mixed_reality else []
    return acknowledgements


def simulation_graph(scenario: str | None = None, seed: int | None = None, real_time_factor: float | None = None,
                     wait_for_subscribers: float | None = None, detector: bool = True,
                     detector_model: str | None = None, predictor: bool = True,
                     predictor_model: str | None = None, planner: str = "lane_keeping",
                     planning_rate: float | None = None, mixed_reality_scene: str | None = None,
                     llm: bool = False, llm_model: str | None = None, llm_cache: str | None = None,
                     lockstep: bool = False) -> list[NodeSpec]:
    """The simulated world, the driver of the robot in it (`planner`: the lane-keeping controller or
    the CROA planner, see PLANNERS) and (with `detector`) the lidar detector on the world's scans,
    followed (with `predictor`) by the tracker and predictor. The CROA planner plans on the
    predictions, so it needs both. With a `mixed_reality_scene` (a Gaussian-splatting .ply of the
    world), the mixed-reality uplink and its server, scoring the stream. With `llm`, the on-device
    language model (`llm_model`, `llm_cache`: see onboard_llm()) answering questions about the scene.
    With `lockstep`, simulated time waits for every node on the world's path to /cmd_vel and the
    uplink (lockstep_acknowledgements); the language model answers on the side."""
    if planner == "croa" and not (detector and predictor):
        raise ValueError("the croa planner plans on the predicted objects: it needs the detector and the predictor")
    acknowledgements = lockstep_acknowledgements(planner, detector, predictor, bool(mixed_reality_scene))
    # The language model first: composed in one process, its start-up (seconds of sessions, minutes
    # of building the first time) would otherwise run while the world waits for its subscribers.
    specs = [onboard_llm(llm_model, llm_cache)] if llm else []
    specs += [sim_world(scenario, seed, real_time_factor, wait_for_subscribers, DRIVER_START_S,
                        acknowledgements if lockstep else None),
              driver(planner, scenario, planning_rate, lockstep)]
    if detector:
        # Lockstep runs are to repeat exactly: so must the detections.
        specs += perception_nodes(detector_model, predictor, predictor_model, repeatable=lockstep)
    if mixed_reality_scene:
        specs += [gsrmr_uplink(mixed_reality_scene), mr_server(mixed_reality_scene)]
    return specs


def replay_graph(bag: str, rate: float = 1.0, loop: bool = False, detector: bool = True,
                 detector_model: str | None = None, predictor: bool = True,
                 predictor_model: str | None = None, wait_for_nodes: list[str] | None = None) -> list[NodeSpec]:
    """A bag player onto the topic contract with /clock and (with `detector`) the lidar detector and
    (with `predictor`) the tracker and predictor on the replayed scans. Their outputs recorded in the
    bag are then not played, so that each of those topics has one publisher."""
    if not detector:
        return [bag_player(bag, rate, loop, wait_for_nodes=wait_for_nodes)]
    from robot_nodes.bags import BagError, BagReader  # here: rosbags is needed only for a replay

    played = None
    try:
        recorded = set(BagReader(bag).topics())
        if recorded & set(PERCEPTION_OUTPUTS):
            played = sorted(recorded - set(PERCEPTION_OUTPUTS))
    except BagError:
        pass  # the player itself says what is wrong with the bag
    return [bag_player(bag, rate, loop, played, wait_for_nodes)] + perception_nodes(detector_model, predictor,
                                                                                   predictor_model)


ROBOT_TOPIC_ARGUMENTS = {"lidar_topic": topics.LIDAR_POINTS, "camera_topic": topics.CAMERA_IMAGE,
                         "camera_info_topic": topics.CAMERA_INFO, "odom_topic": topics.ODOMETRY,
                         "tf_static_topic": topics.TF_STATIC, "cmd_vel_topic": topics.CMD_VEL}
"""robot.launch.py's arguments naming a robot's own sensor and command topics → the contract topic
each stands in for (its default)."""


def on_robot_topics(spec: NodeSpec, robot_topics: dict[str, str]) -> NodeSpec:
    """`spec` with its remappings onto the contract topics in `robot_topics` (contract topic → the
    robot's own topic) moved to the robot's topics."""
    return replace(spec, remappings=tuple((private, robot_topics.get(public, public))
                                          for private, public in spec.remappings))


def onboard_nodes(use_sim_time: bool, scenario: str | None = None, detector: bool = True,
                  detector_model: str | None = None, predictor: bool = True, predictor_model: str | None = None,
                  planner: str = "lane_keeping", planning_rate: float | None = None,
                  mixed_reality_scene: str | None = None, llm: bool = False,
                  llm_model: str | None = None) -> list[NodeSpec]:
    """The nodes that run on the robot's own computer, on a robot or a Gazebo robot: the driver
    (`planner`, on `scenario`'s road; see simulation_graph()), with `detector` the lidar detector and
    with `predictor` the tracker and predictor, with a `mixed_reality_scene` the robot side of the
    uplink, and with `llm` the on-device language model. Every one but the world of the simulation."""
    if planner == "croa" and not (detector and predictor):
        raise ValueError("the croa planner plans on the predicted objects: it needs the detector and the predictor")
    specs = [driver(planner, scenario, planning_rate, use_sim_time=use_sim_time)]
    if detector:
        specs += perception_nodes(detector_model, predictor, predictor_model, use_sim_time)
    if mixed_reality_scene:
        specs.append(gsrmr_uplink(mixed_reality_scene, use_sim_time))
    if llm:
        specs.append(onboard_llm(llm_model, use_sim_time=use_sim_time))
    return specs


def robot_graph(robot_topics: dict[str, str] | None = None, **options) -> list[NodeSpec]:
    """On a robot: onboard_nodes() (`options`: its arguments but use_sim_time) on the robot's clock
    (use_sim_time false: nothing publishes /clock), reading the robot's sensors and commanding it on
    its own topics (`robot_topics`: contract topic → the robot's topic; the rest stay on the contract).
    The mixed-reality server is the remote side: it runs on the remote machine, not here."""
    return [on_robot_topics(spec, robot_topics or {}) for spec in onboard_nodes(False, **options)]


def gazebo_graph(mixed_reality_scene: str | None = None, **options) -> list[NodeSpec]:
    """With Gazebo: onboard_nodes() (`options`: its arguments but use_sim_time and the scene) on
    Gazebo's clock, which gz_bridge() puts on /clock with the sensors; with a `mixed_reality_scene`
    the server beside the uplink, as in the simulation graph (one machine), scoring the stream."""
    specs = onboard_nodes(True, mixed_reality_scene=mixed_reality_scene, **options)
    return specs + ([mr_server(mixed_reality_scene)] if mixed_reality_scene else [])


@dataclass(frozen=True)
class ExternalNodeSpec:
    """A node of another package that a launch file starts beside the graph's nodes."""

    package: str
    executable: str
    name: str
    parameters: dict = field(default_factory=dict, hash=False)
    """Parameter values (the node's own: it has no config/<name>.param.yaml of ours)."""


def gz_bridge() -> ExternalNodeSpec:
    """ros_gz_bridge's parameter_bridge with config/gz_bridge.yaml: a Gazebo robot's sensors, /odom,
    /tf, /tf_static and /clock onto the contract and /cmd_vel back to Gazebo."""
    return ExternalNodeSpec(
        package="ros_gz_bridge", executable="parameter_bridge", name="gz_bridge",
        # The bridge's publishers are volatile; /tf_static's subscribers (ours and tf2's) are
        # transient local and would not match it.
        parameters={"config_file": str(share_path("config", "gz_bridge.yaml")),
                    f"qos_overrides.{topics.TF_STATIC}.publisher.durability": "transient_local"})
