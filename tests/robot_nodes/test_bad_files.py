"""Truncated and corrupt files given to the console scripts, one of each kind: a bag, the detector's
.pt, the predictor's .onnx, the language model's GGUF, a Gaussian-splatting .ply, a scenario YAML and
a parameter file. Each node process ends with exit code 2 and one line naming the file and the
problem; the commands (`evaluate`, `edge-demo`) exit non-zero the same way, with no output presented
as complete. None prints a traceback."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ros_domains import random_domain
from test_node_processes import node_command

REPO = Path(__file__).resolve().parents[2]


def truncated(source: Path, folder: Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of a real file, under the same name in `folder`."""
    path = folder / source.name
    path.write_bytes(source.read_bytes()[:int(source.stat().st_size * fraction)])
    return path


def garbage(folder: Path, name: str, size: int = 4096) -> Path:
    path = folder / name
    path.write_bytes(bytes(range(256)) * (size // 256))
    return path


def run(command: list[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    environment = dict(os.environ, ROS_DOMAIN_ID=str(random_domain(first=1)))
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout_s)


def gaussian_scene(folder: Path) -> Path:
    """A small real .ply written by the project's own GaussianModel."""
    import numpy as np
    from mixed_reality.gaussians import GaussianModel
    count = 64
    model = GaussianModel(means=np.random.default_rng(0).normal(size=(count, 3)), scales=np.full((count, 3), 0.1),
                          rotations=np.tile([1.0, 0.0, 0.0, 0.0], (count, 1)), opacities=np.full(count, 0.9),
                          colors=np.full((count, 3), 0.5))
    path = folder / "scene.ply"
    model.save_ply(path)
    return path


def gguf_model(folder: Path) -> Path:
    """A GGUF header that stops after its magic and version (a download cut short)."""
    path = folder / "model.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\x05")
    return path


def damaged_bag(folder: Path) -> Path:
    """A real recorded bag (the project's writer) with its storage file cut to 60 %."""
    from test_bags import write_sample_bag
    bag = folder / "bag"
    write_sample_bag(bag, "mcap")
    storage = bag / "bag.mcap"
    storage.write_bytes(storage.read_bytes()[:int(storage.stat().st_size * 0.6)])
    return bag


NODE_FILES = {
    # kind: (executable, parameter, make the bad file in a folder)
    "truncated detector .pt": ("lidar_detector", "model_path",
                               lambda folder: truncated(REPO / "models/lidar_detector.pt", folder)),
    "truncated predictor .onnx": ("trajectory_predictor", "model_path",
                                  lambda folder: truncated(REPO / "models/trajectory_predictor_apolloscape.onnx",
                                                           folder)),
    "truncated language model GGUF": ("onboard_llm", "model_path", gguf_model),
    "truncated Gaussian scene .ply (uplink)": ("gsrmr_uplink", "model_path",
                                               lambda folder: truncated(gaussian_scene(folder), folder, 0.7)),
    "garbage Gaussian scene .ply (server)": ("mr_server", "model_path",
                                             lambda folder: garbage(folder, "scene.ply")),
    "scenario YAML cut mid-mapping": ("sim_world", "scenario",
                                      lambda folder: truncated(REPO / "config/scenarios/urban_default.yaml",
                                                               folder, 0.37)),
    "scenario YAML of garbage": ("croa_planner", "scenario", lambda folder: garbage(folder, "scenario.yaml")),
    "truncated bag": ("bag_player", "bag", damaged_bag),
}


def assert_clear_failure(result: subprocess.CompletedProcess, path: Path, exit_code: int | None = 2) -> None:
    output = result.stdout + result.stderr
    assert (result.returncode == exit_code) if exit_code is not None else result.returncode != 0, output
    assert str(path) in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("kind", NODE_FILES)
def test_a_node_given_a_bad_file_exits_2_with_one_line_naming_it(tmp_path, kind):
    executable, parameter, make = NODE_FILES[kind]
    path = make(tmp_path)
    result = run(node_command(executable) + ["--ros-args", "-p", f"{parameter}:={path}"])
    assert_clear_failure(result, path)


def test_a_corrupt_parameter_file_is_one_line_naming_it_and_exit_2(tmp_path):
    path = tmp_path / "lane_keeping_controller.param.yaml"
    path.write_text("/**:\n  ros__parameters:\n    target_speed: [unclosed\n")
    result = run(node_command("lane_keeping_controller") + ["--ros-args", "--params-file", str(path)])
    assert_clear_failure(result, path)


def test_evaluate_on_a_truncated_bag_names_the_bag_and_writes_no_report(tmp_path):
    bag = damaged_bag(tmp_path)
    result = run(node_command("evaluate") + [str(bag), "--output", str(tmp_path / "report")])
    assert_clear_failure(result, bag, exit_code=None)
    assert not (tmp_path / "report" / "report.md").exists()


def test_edge_demo_on_a_corrupt_scenario_names_it_and_runs_nothing(tmp_path):
    scenario = garbage(tmp_path, "scenario.yaml")
    result = run(node_command("edge-demo") + ["--scenario", str(scenario), "--output", str(tmp_path / "demo"),
                                               "--no-llm", "--no-mixed-reality"])
    assert_clear_failure(result, scenario, exit_code=None)
    assert not list((tmp_path / "demo").glob("*/report.md"))
