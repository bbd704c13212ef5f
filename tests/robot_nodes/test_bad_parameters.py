"""Every declared parameter of every node, given a value out of its descriptor's range or of another
type, is refused with a reason naming it: at start (a parameter override: the node does not come up,
ParameterError names the parameter) and at run time (set_parameters answers unsuccessful, with the
reason). The bad values come from each parameter's descriptor (type, integer or floating-point range)
on a real node made from the graph's spec with its real parameter file."""
from __future__ import annotations

import math

import pytest
from rclpy.parameter import Parameter

import test_bad_input
import test_gsrmr_nodes
import test_onboard_llm_node
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError

scene_file = test_gsrmr_nodes.scene_file
"""Fixture: a small real Gaussian scene (a coloured wall)."""
cache = test_onboard_llm_node.cache
"""Fixture: the tiny language model's built variants."""

ROS_OWN = {"use_sim_time", "start_type_description_service"}
"""Parameters rclpy declares itself, not the node's config."""

WRONG_TYPE = {
    Parameter.Type.BOOL: "yes", Parameter.Type.INTEGER: "three", Parameter.Type.DOUBLE: "fast",
    Parameter.Type.STRING: 2.5, Parameter.Type.BOOL_ARRAY: "x", Parameter.Type.INTEGER_ARRAY: ["a"],
    Parameter.Type.DOUBLE_ARRAY: "x", Parameter.Type.STRING_ARRAY: 7,
}
"""A value of another type for each parameter type."""


def bad_values(descriptor) -> list:
    """A wrong-typed value, and values just past each end of the descriptor's range."""
    values = [WRONG_TYPE[Parameter.Type(descriptor.type)]]
    for bounds in descriptor.integer_range:
        values += [bounds.from_value - 1, bounds.to_value + 1]
    for bounds in descriptor.floating_point_range:
        margin = max(1.0, abs(bounds.to_value - bounds.from_value))
        values += [bounds.from_value - margin, bounds.to_value + margin]
        values += [math.nan] if math.isfinite(bounds.from_value) else []
    return values


@pytest.mark.parametrize("name", test_bad_input.NODES)
def test_out_of_range_and_wrong_type_parameters_are_refused_at_start_and_at_run_time(context, scene_file, cache,
                                                                                     name):
    node = test_bad_input.create_node(context, name, scene_file, cache)
    try:
        names = sorted(set(node._parameters) - ROS_OWN)
        descriptors = dict(zip(names, node.describe_parameters(names)))
    finally:
        node.destroy_node()
    assert names
    not_refused, refused = [], 0
    spec, overrides = test_bad_input.node_spec(name, scene_file, cache)
    for parameter, descriptor in descriptors.items():
        for value in bad_values(descriptor):
            values = {**overrides, parameter: value}
            try:
                started = spec.create(context=context, parameter_overrides=[Parameter(k, value=v)
                                                                            for k, v in values.items()])
            except (ParameterError, StartupError) as error:
                if parameter not in str(error):
                    not_refused.append(f"start {parameter}={value!r}: reason does not name it: {error}")
                refused += 1
            else:
                started.destroy_node()
                not_refused.append(f"start {parameter}={value!r}: accepted")
    assert not not_refused, "\n".join(not_refused)

    node = test_bad_input.create_node(context, name, scene_file, cache)
    try:
        for parameter, descriptor in descriptors.items():
            before = node._parameters[parameter].value  # unset (empty list) parameters too
            for value in bad_values(descriptor):
                result = node.set_parameters([Parameter(parameter, value=value)])[0]
                if result.successful or not result.reason:
                    not_refused.append(f"run time {parameter}={value!r}: {result}")
                refused += 1
            assert node._parameters[parameter].value == before
    finally:
        node.destroy_node()
    assert not not_refused, "\n".join(not_refused)
    print(f"{name}: {len(names)} parameters, {refused} bad values refused")
