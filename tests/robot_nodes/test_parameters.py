"""Typed dataclass configs as ROS parameters: descriptors, validation at start and at run time."""
from dataclasses import dataclass, field

import pytest
import rclpy
from rclpy.parameter import Parameter

from robot_nodes.parameters import ParameterError, config_from_parameter_file, declare_config, field_docstrings


@dataclass
class SensorConfig:
    beams: int = field(default=64, metadata={"range": (1, 128)})
    """Number of laser beams."""


@dataclass
class ExampleConfig:
    rate: float = field(default=10.0, metadata={"range": (0.1, 100.0)})
    """Publish rate, Hz."""
    frame: str = "base_link"
    """Frame of the output."""
    gains: list[float] = field(default_factory=lambda: [1.0, 2.0])
    """Controller gains."""
    sensor: SensorConfig = field(default_factory=SensorConfig)
    """The sensor."""
    topics: list[str] = field(default_factory=list)
    """Topics; empty by default (rclpy would type an empty list default as a byte array)."""

    def __post_init__(self) -> None:
        if not self.frame:
            raise ValueError("frame must not be empty")


def make_node(context, overrides=(), **kwargs):
    return rclpy.create_node("example", context=context, parameter_overrides=list(overrides), **kwargs)


def test_docstrings_become_descriptions_with_ranges(context):
    node = make_node(context)
    declare_config(node, ExampleConfig)
    assert field_docstrings(ExampleConfig)["rate"] == "Publish rate, Hz."
    rate = node.describe_parameter("rate")
    assert rate.description == "Publish rate, Hz."
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) == (0.1, 100.0)
    beams = node.describe_parameter("sensor.beams")
    assert beams.description == "Number of laser beams."
    assert beams.integer_range[0].to_value == 128
    node.destroy_node()


def test_overrides_reach_the_config(context):
    node = make_node(context, [Parameter("rate", value=20.0), Parameter("sensor.beams", value=32),
                               Parameter("gains", value=[0.5]), Parameter("topics", value=["/a", "/b"])])
    config = declare_config(node, ExampleConfig)
    assert config == ExampleConfig(rate=20.0, gains=[0.5], sensor=SensorConfig(beams=32), topics=["/a", "/b"])


def test_empty_list_default_stays_empty(context):
    node = make_node(context)
    assert declare_config(node, ExampleConfig).topics == []
    node.destroy_node()


@pytest.mark.parametrize("override, reason", [
    (Parameter("rate", value=500.0), "rate"),
    (Parameter("rate", value="fast"), "rate"),
    (Parameter("frame", value=""), "frame must not be empty"),
])
def test_bad_values_at_start_are_refused_with_the_reason(context, override, reason):
    node = make_node(context, [override])
    with pytest.raises(ParameterError, match=reason):
        declare_config(node, ExampleConfig)
    node.destroy_node()


def test_run_time_changes_are_validated(context):
    node = make_node(context)
    changes = []
    declare_config(node, ExampleConfig, on_change=changes.append)
    refused = node.set_parameters([Parameter("frame", value="")])[0]
    assert not refused.successful and "frame must not be empty" in refused.reason
    out_of_range = node.set_parameters([Parameter("sensor.beams", value=500)])[0]
    assert not out_of_range.successful
    wrong_type = node.set_parameters([Parameter("rate", value="x")])[0]
    assert not wrong_type.successful
    assert changes == []
    accepted = node.set_parameters([Parameter("rate", value=5.0)])[0]
    assert accepted.successful and changes == [ExampleConfig(rate=5.0)]
    node.destroy_node()


def test_without_on_change_parameters_are_read_only(context):
    node = make_node(context)
    declare_config(node, ExampleConfig)
    assert not node.set_parameters([Parameter("rate", value=5.0)])[0].successful
    node.destroy_node()


def test_parameter_file_outside_ros(tmp_path):
    path = tmp_path / "example.param.yaml"
    path.write_text("/**:\n  ros__parameters:\n    rate: 2.0\n    sensor:\n      beams: 16\n"
                    "example:\n  ros__parameters:\n    frame: lidar\n")
    assert config_from_parameter_file(ExampleConfig, path, "example") == ExampleConfig(
        rate=2.0, frame="lidar", sensor=SensorConfig(beams=16))
    path.write_text("/**:\n  ros__parameters:\n    rat: 2.0\n")
    with pytest.raises(ParameterError, match="unknown parameters for example: rat"):
        config_from_parameter_file(ExampleConfig, path, "example")
    path.write_text("/**: [unclosed\n")
    with pytest.raises(ParameterError, match="cannot read parameter file"):
        config_from_parameter_file(ExampleConfig, path, "example")
