"""The node graph, its parameter files and launch files, record-sim, and the main job end to end."""
from __future__ import annotations

import ast
import collections
import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image

from evaluation import report_plots
from evaluation.report_check import render_in_chromium
from onboard_llm.energy import MODEL_SOURCE, RAPL_SOURCE
from onboard_llm.variants import build_variants, cache_folder
from perception.detection import CenterPointNet, DetectorConfig, save_checkpoint
from robot_nodes import graph, main_job, topics
from robot_nodes.bags import BagReader, BagWriter
from robot_nodes.croa_planner import CroaPlannerNodeConfig
from robot_nodes.gsrmr_uplink import GsrmrUplinkConfig
from robot_nodes.lane_keeping_controller import LaneKeepingNodeConfig
from robot_nodes.lidar_detector import LidarDetectorConfig
from robot_nodes.mr_server import MrServerConfig
from robot_nodes.onboard_llm import OnboardLlmConfig
from robot_nodes.parameters import config_from_parameter_file
from robot_nodes.record_sim import drive, record_simulation
from robot_nodes.sim_messages import SimWorldConfig
from robot_nodes.trajectory_predictor import TrajectoryPredictorConfig
from training.gaussian_scene import build_scene

REPO = Path(__file__).resolve().parents[2]
TINY_LLM = REPO / "data/llm/stories260K.bin"
ALL_SPECS = [*graph.simulation_graph(mixed_reality_scene="scene.ply", llm=True), graph.croa_planner(),
             graph.bag_player("some_bag"), graph.bag_recorder("out", ["/odom"])]


def console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant) and ":" in str(value.value):
                    scripts[key.value] = value.value
    return scripts


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda spec: spec.name)
def test_every_node_spec_names_real_things(spec):
    scripts = console_scripts()
    assert spec.executable in scripts
    module, function = scripts[spec.executable].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    module, node_class = spec.node_class.split(":")
    assert hasattr(importlib.import_module(module), node_class)
    assert spec.parameter_file.is_file()
    for private, public in spec.remappings:
        assert private.startswith("~/") and public in topics.CONTRACT


@pytest.mark.parametrize("node_name, config_cls", [("sim_world", SimWorldConfig),
                                                    ("lane_keeping_controller", LaneKeepingNodeConfig),
                                                    ("lidar_detector", LidarDetectorConfig),
                                                    ("trajectory_predictor", TrajectoryPredictorConfig),
                                                    ("croa_planner", CroaPlannerNodeConfig),
                                                    ("onboard_llm", OnboardLlmConfig)])
def test_parameter_files_match_the_configs(node_name, config_cls):
    # Unknown keys or out-of-range values in the file would raise here.
    config_from_parameter_file(config_cls, REPO / "config" / f"{node_name}.param.yaml", node_name)


@pytest.mark.parametrize("node_name, config_cls", [("gsrmr_uplink", GsrmrUplinkConfig), ("mr_server", MrServerConfig)])
def test_the_mixed_reality_parameter_files_match_the_configs_given_a_scene(node_name, config_cls):
    # The scene is per world: graph.py gives it (the files leave model_path empty).
    config_from_parameter_file(config_cls, REPO / "config" / f"{node_name}.param.yaml", node_name,
                               {"model_path": "scene.ply"})


def test_the_simulation_runs_the_perception_nodes_and_a_replay_with_them_leaves_their_recorded_outputs_out(tmp_path):
    assert [spec.name for spec in graph.simulation_graph()] == ["sim_world", "lane_keeping_controller", "lidar_detector",
                                                                "trajectory_predictor"]
    assert [spec.name for spec in graph.simulation_graph(predictor=False)][-1] == "lidar_detector"
    uplink, server = graph.simulation_graph(mixed_reality_scene="/scene.ply")[-2:]
    assert (uplink.name, server.name) == ("gsrmr_uplink", "mr_server")
    assert uplink.parameters["model_path"] == server.parameters["model_path"] == "/scene.ply"
    assert dict(uplink.remappings)["~/output/uplink"] == dict(server.remappings)["~/input/uplink"] == topics.UPLINK_IMAGE
    assert dict(server.remappings)["~/input/true_image"] == topics.CAMERA_IMAGE and server.parameters["evaluate"]
    assert [spec.name for spec in graph.simulation_graph(detector=False)] == ["sim_world", "lane_keeping_controller"]
    detector, predictor = graph.simulation_graph(detector_model="/some/model.pt", predictor_model="/p.onnx")[-2:]
    assert dict(predictor.remappings)["~/input/objects"] == topics.DETECTED_OBJECTS
    assert dict(predictor.remappings)["~/output/predicted_objects"] == topics.PREDICTED_OBJECTS
    assert predictor.parameters == {"use_sim_time": True, "model_path": "/p.onnx"}
    assert dict(detector.remappings)["~/input/pointcloud"] == topics.LIDAR_POINTS
    assert dict(detector.remappings)["~/output/objects"] == topics.DETECTED_OBJECTS
    assert detector.parameters == {"use_sim_time": True, "model_path": "/some/model.pt"}

    sim_config = config_from_parameter_file(SimWorldConfig, REPO / "config" / "sim_world.param.yaml", "sim_world",
                                            {"camera_rate": 0.0})
    bag = record_simulation(tmp_path / "bag", 0.2, sim_config, LaneKeepingNodeConfig(), progress=False).bag
    player, detector, predictor = graph.replay_graph(str(bag))
    assert "topics" not in player.parameters and detector.name == "lidar_detector"  # no detections recorded
    assert predictor.name == "trajectory_predictor"
    assert graph.replay_graph(str(bag), detector=False) == [graph.bag_player(str(bag))]
    with_detections = tmp_path / "with_detections"
    with BagWriter(with_detections) as writer:
        for topic in (topics.LIDAR_POINTS, topics.DETECTED_OBJECTS, topics.PREDICTED_OBJECTS):
            writer.add_topic(topic, topics.CONTRACT[topic])
    player, _, _ = graph.replay_graph(str(with_detections))
    assert player.parameters["topics"] == [topics.LIDAR_POINTS]


def test_the_croa_planner_replaces_the_lane_keeping_controller_as_the_driver():
    names = [spec.name for spec in graph.simulation_graph(planner="croa", planning_rate=5.0, scenario="s.yaml")]
    assert names == ["sim_world", "croa_planner", "lidar_detector", "trajectory_predictor"]
    specs = graph.simulation_graph(planner="croa", planning_rate=5.0, scenario="s.yaml")
    drivers = [spec.name for spec in specs if dict(spec.remappings).get("~/output/cmd_vel") == topics.CMD_VEL]
    assert drivers == ["croa_planner"]  # one publisher of /cmd_vel
    planner = specs[1]
    assert planner.parameters == {"use_sim_time": True, "scenario": "s.yaml", "planning_rate": 5.0}
    assert dict(planner.remappings)["~/input/predicted_objects"] == topics.PREDICTED_OBJECTS
    assert dict(planner.remappings)["~/output/path"] == topics.PLANNED_PATH
    assert [spec.name for spec in graph.simulation_graph() if dict(spec.remappings).get("~/output/cmd_vel")] == [
        "lane_keeping_controller"]
    with pytest.raises(ValueError, match="detector and the predictor"):
        graph.simulation_graph(planner="croa", predictor=False)
    with pytest.raises(ValueError, match="planner must be one of"):
        graph.simulation_graph(planner="autopilot")


def test_the_language_model_joins_the_graph_on_request_grounded_in_the_perception_and_plan_topics():
    assert "onboard_llm" not in [spec.name for spec in graph.simulation_graph()]
    llm, world = graph.simulation_graph(llm=True, llm_model="/m.gguf", llm_cache="/cache")[:2]
    assert world.name == "sim_world"  # created after the model's start-up, so the world waits for nobody
    assert llm.name == "onboard_llm"
    assert llm.parameters == {"use_sim_time": True, "model_path": "/m.gguf", "cache_dir": "/cache"}
    remapped = dict(llm.remappings)
    assert remapped["~/input/detected_objects"] == topics.DETECTED_OBJECTS
    assert remapped["~/input/predicted_objects"] == topics.PREDICTED_OBJECTS
    assert remapped["~/input/planner_status"] == topics.CROA_PLANNER_STATUS
    assert (remapped["~/input/question"], remapped["~/output/answer"]) == (topics.LLM_QUESTION, topics.LLM_ANSWER)
    assert topics.LLM_ASK_ACTION == f"/{llm.name}/ask"  # the node's own ~/ask, not remapped


@pytest.mark.parametrize("launch_file", sorted((REPO / "launch").glob("*.launch.py")), ids=lambda path: path.name)
def test_launch_files_parse_and_use_the_graph(launch_file):
    tree = ast.parse(launch_file.read_text())
    functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert re.search(r"from robot_nodes import graph", launch_file.read_text())


def test_record_sim_writes_the_contract_deterministically(tmp_path):
    sim_config = config_from_parameter_file(SimWorldConfig, REPO / "config" / "sim_world.param.yaml", "sim_world")
    drive_config = LaneKeepingNodeConfig()
    first = record_simulation(tmp_path / "first", 1.0, sim_config, drive_config, progress=False)
    second = record_simulation(tmp_path / "second", 1.0, sim_config, drive_config, storage="sqlite3", progress=False)
    assert first.messages == second.messages
    assert first.messages[topics.LIDAR_POINTS] == 10 and first.messages[topics.ODOMETRY] == 50
    assert first.messages[topics.CAMERA_IMAGE] == 10 and first.messages[topics.TF_STATIC] == 1

    def contents(bag: Path) -> dict[str, list]:
        by_topic = collections.defaultdict(list)
        reader = BagReader(bag)
        for topic, msgtype, stamp, raw in reader.messages():
            by_topic[topic].append((stamp, reader.deserialize(raw, msgtype)))
        return by_topic

    # Same scenario and seed: the same sensor data and ground truth, whatever the storage. (Messages,
    # not bytes, are compared: rclpy leaves CDR padding bytes uninitialised.)
    first_contents, second_contents = contents(first.bag), contents(second.bag)
    for topic in (topics.LIDAR_POINTS, topics.GROUND_TRUTH_OBJECTS, topics.ODOMETRY, topics.CAMERA_IMAGE):
        assert first_contents[topic] == second_contents[topic]

    # Camera frames come alternately from the recorder and its worker process: both must equal
    # what one process rendering every frame of the same episode gives.
    rendered = {}
    for step, _, messages, _ in drive(sim_config, drive_config, 0.2):
        if step and step % messages.camera_every == 0:
            rendered[step] = messages.camera()[0]
    recorded_images = [image for _, image in first_contents[topics.CAMERA_IMAGE][:2]]
    assert recorded_images == [rendered[5], rendered[10]]


def run_report(tmp_path) -> str:
    return next(tmp_path.glob("runs/*/report.md")).read_text()


def test_main_job_records_replays_and_loses_nothing(tmp_path, capsys):
    torch.manual_seed(0)
    model = tmp_path / "untrained.pt"  # the plumbing, not the trained weights
    save_checkpoint(model, CenterPointNet(DetectorConfig()))
    scene = tmp_path / "scene.ply"  # the first 60 m of the default world: what a 1 s drive sees nearby
    build_scene(REPO / "config" / "scenarios" / "urban_default.yaml", 0, s_range=(20.0, 80.0),
                progress=False).save_ply(scene)
    exit_code = main_job.main(["--duration", "1.0", "--replay-rate", "2", "--planner", "lane_keeping", "--no-llm",
                               "--output", str(tmp_path / "runs"), "--detector-model", str(model),
                               "--mixed-reality-scene", str(scene)])
    report = run_report(tmp_path)
    assert exit_code == 0, report
    assert next(tmp_path.glob("runs/*/report.html")).read_text().count("data:image/png;base64") >= 3
    assert "messages lost in replay: 0" in report and "**NO**" not in report, report
    assert "mode: lockstep" in report and "the world never went on without the stack" in report, report
    published, recorded = map(int, re.search(r"\| `/sensing/lidar/points` \| (\d+) \| (\d+) \|", report).groups())
    assert published == recorded >= 10  # the world waited for the recorder: every scan is in the bag
    assert re.search(r"\| `/perception/objects` \| – \| [1-9]\d* \|", report), report
    # In lockstep every scan and frame is processed: nothing dropped, by any node.
    for node in ("lidar_detector", "trajectory_predictor", "gsrmr_uplink", "mr_server", "lane_keeping_controller"):
        assert re.search(rf"\| `{node}` \| [1-9]\d* \| [1-9]\d* \| 0 \(0\.0%\) \|", report), (node, report)
    assert "## Lidar detection" in report and "| class | GT | detections | AP BEV | AP 3D |" in report, report
    assert "## Tracking" in report and "| vehicle |" in report, report
    assert "## Mixed-reality uplink (GSRMR)" in report and "always uploading" in report, report
    assert "policy fallbacks (the image uploaded at full power): 0" in report, report
    assert re.search(r"the remote stream against the true frames \([1-9]\d* scored\): PSNR \d", report), report
    assert "## Driving" in report and "collisions with road users: 0" in report, report
    # The page as a person sees it: headless Chromium shows the scene, the histograms and the uplink.
    screenshot = render_in_chromium(next(tmp_path.glob("runs/*/report.html")), tmp_path / "page.png",
                                    width=1280, height=9000)
    image = np.asarray(Image.open(screenshot).convert("RGB")).astype(float)
    for colour in (report_plots.TRUTH_FACE_COLOR, report_plots.HISTOGRAM_COLOR, report_plots.UPLOAD_COLOR):
        near = np.linalg.norm(image - 255.0 * np.array(to_rgb(colour)), axis=-1) < 30.0
        assert near.sum() > 300, f"no {colour} on the page: a figure is missing"


@pytest.mark.slow
def test_main_job_driven_by_the_croa_planner_reports_its_cycles_and_the_driving(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "untrained.pt"
    save_checkpoint(model, CenterPointNet(DetectorConfig()))
    exit_code = main_job.main(["--duration", "2.0", "--replay-rate", "2", "--output", str(tmp_path / "runs"),
                               "--detector-model", str(model), "--no-mixed-reality", "--no-llm"])
    report = run_report(tmp_path)
    assert exit_code == 0, report
    assert "## CROA planning" in report and "planning cycles" in report, report
    assert re.search(r"\| `/planning/croa_planner/status` \| – \| [1-9]\d* \|", report), report
    assert "collisions with road users" in report, report


def test_two_lockstep_runs_of_the_stack_drive_alike(tmp_path):
    """The CROA planner on the real detector's predictions, twice: lockstep makes the runs repeat
    message for message (the machine's speed and load between them do not matter)."""
    def run(name: str) -> dict[str, list]:
        assert main_job.main(["--duration", "2.0", "--replay-rate", "4", "--output", str(tmp_path / name),
                              "--no-mixed-reality", "--no-llm"]) == 0
        reader = BagReader(next(tmp_path.glob(f"{name}/*/sim_bag")))
        by_topic = collections.defaultdict(list)
        for topic, msgtype, _, raw in reader.messages([topics.ODOMETRY, topics.DETECTED_OBJECTS,
                                                       topics.PREDICTED_OBJECTS]):
            message = reader.deserialize(raw, msgtype)
            # Stamp 0: the start, repeated while the world waits for its driver (as often as that
            # takes); past 2 s the world runs on for the nodes' last statistics.
            if 0 < message.header.stamp.sec * 10**9 + message.header.stamp.nanosec < 2 * 10**9:
                by_topic[topic].append(message)
        return by_topic

    first, second = run("first"), run("second")
    assert len(first[topics.DETECTED_OBJECTS]) >= 18 and len(first[topics.ODOMETRY]) >= 95
    for topic in (topics.ODOMETRY, topics.DETECTED_OBJECTS, topics.PREDICTED_OBJECTS):
        assert first[topic] == second[topic], topic  # the odometry follows the commands: they were the same


def test_main_job_asks_the_language_model_about_the_scene_and_reports_answers_latency_and_energy(tmp_path):
    cache = tmp_path / "llm"
    build_variants(TINY_LLM, cache_folder(TINY_LLM, cache), window=64, evaluation_windows=2, calibration_windows=2,
                   threads=1, log=lambda line: None)
    exit_code = main_job.main(["--duration", "1.0", "--replay-rate", "2", "--planner", "lane_keeping",
                               "--output", str(tmp_path / "runs"), "--no-detector", "--no-mixed-reality",
                               "--llm-model", str(TINY_LLM), "--llm-cache", str(cache)])
    report = run_report(tmp_path)
    assert exit_code == 0, report
    published, recorded = map(int, re.search(r"\| `/sensing/lidar/points` \| (\d+) \| (\d+) \|", report).groups())
    assert published == recorded  # the model's start-up did not eat into the world's wait for the recorder
    section = report.split("## On-device language model")[1].split("\n## ")[0]
    assert f"{len(main_job.SCENE_QUESTIONS)} questions, {len(main_job.SCENE_QUESTIONS)} answered" in section, section
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (\w+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \((.+?)\) \| (.+) \|$",
                      section, re.MULTILINE)
    assert [row[0] for row in rows] == [question.text for question in main_job.SCENE_QUESTIONS], section
    for _, _, variant, _, tpot, total, joules, source, text in rows:
        assert text.strip() and variant in OnboardLlmConfig().variants
        assert float(tpot) > 0 and float(total) > 0 and float(joules) > 0 and source in (RAPL_SOURCE, MODEL_SOURCE)


def test_main_job_without_a_model_says_which_file_and_what_to_do(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert main_job.main(["--duration", "1.0", "--output", str(tmp_path), "--detector-model", str(missing),
                          "--no-mixed-reality", "--no-llm"]) == 2
    error = capsys.readouterr().err
    assert str(missing) in error and "--no-detector" in error
