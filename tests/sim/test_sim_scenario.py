"""Scenario files: the shipped ones load, and every kind of mistake names the file and the field."""
import math

import pytest

from sim.camera import CameraConfig
from sim.lidar import LidarConfig
from sim.scenario import Scenario, ScenarioError, load_scenario
from sim.transforms import MountPose

from sim_fixtures import SCENARIO_DIR, SCENARIO_NAMES


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_shipped_scenarios_load(name):
    loaded = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    assert loaded.name == name
    assert loaded.road.lanes_per_direction >= 3


def test_urban_default_has_the_main_demo_contents():
    loaded = load_scenario(SCENARIO_DIR / "urban_default.yaml")
    assert loaded.traffic.count > 0 and loaded.pedestrians.count > 0 and loaded.parked.fill > 0
    assert loaded.lidar.beams == 64
    assert loaded.lidar.mount.z == pytest.approx(1.73)


def test_keys_left_out_keep_their_defaults(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("traffic: {count: 3}\n")
    loaded = load_scenario(path)
    assert loaded.traffic.count == 3
    assert loaded.road == Scenario().road
    assert isinstance(loaded.traffic.speed_min, float)


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    return message


def test_negative_count_names_file_and_field(tmp_path):
    message = _error(tmp_path, "traffic:\n  count: -3\n")
    assert message == f"{tmp_path / 'bad.yaml'}: traffic.count: must be >= 0, got -3"


def test_unknown_key_names_the_field(tmp_path):
    message = _error(tmp_path, "traffic:\n  count: 3\n  colour: red\n")
    assert "traffic.colour: unknown key" in message
    assert "count" in message  # lists what is expected


def test_unknown_top_level_key(tmp_path):
    assert "weather: unknown key" in _error(tmp_path, "weather: rainy\n")


@pytest.mark.parametrize("text, field, expected", [
    ("road: {lanes_per_direction: three}\n", "road.lanes_per_direction", "an integer"),
    ("traffic: {count: true}\n", "traffic.count", "an integer"),
    ("road: {lane_width: wide}\n", "road.lane_width", "a number"),
    ("lidar: {mount: {z: high}}\n", "lidar.mount.z", "a number"),
    ("parked: {left_side: 1}\n", "parked.left_side", "a boolean"),
    ("camera: {sky_color: [1, 2]}\n", "camera.sky_color", "3 elements"),
    ("road: 5\n", "road", "a mapping"),
])
def test_wrong_types_name_the_field(tmp_path, text, field, expected):
    message = _error(tmp_path, text)
    assert f": {field}: " in message and expected in message, message


@pytest.mark.parametrize("text, field", [
    ("traffic: {speed_min: 10.0, speed_max: 5.0}\n", "traffic.speed_max"),
    ("ego: {lane: 6}\n", "ego.lane"),
    ("lidar: {elevation_min: 0.1, elevation_max: 0.0}\n", "lidar.elevation_min"),
    ("parked: {class_mix: {car: 0, van: 0, truck: 0, bus: 0}}\n", "parked.class_mix.car"),
    ("road: {curvature: 0.5}\n", "road.curvature"),
    ("camera: {width: 2}\n", "camera.width"),
])
def test_inconsistent_values_name_the_field(tmp_path, text, field):
    assert f": {field}: " in _error(tmp_path, text)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    message = _error(tmp_path, "name: x\nroad:\n  lane_width: [3.5\n  length: 100\n")
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:")
    line = int(message.split(":")[1])
    assert 3 <= line <= 5
    assert "invalid YAML" in message


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ScenarioError, match="missing.yaml"):
        load_scenario(tmp_path / "missing.yaml")


def test_configs_validate_when_built_directly():
    with pytest.raises(ValueError, match="beams: must be >= 1"):
        LidarConfig(beams=0)
    with pytest.raises(ValueError, match="pitch"):
        MountPose(pitch=math.pi)
    with pytest.raises(ValueError, match="ambient"):
        CameraConfig(ambient=2.0)
