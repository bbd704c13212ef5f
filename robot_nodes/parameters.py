"""ROS parameters from typed dataclass configs.

A node's config is a dataclass whose fields carry a docstring (the string literal under the
field) and optionally `metadata={"range": (low, high)}`. Every field becomes a parameter declared
with a descriptor (type, description, range); nested dataclasses become dotted names
(`lidar.beams`). Values are validated by building the dataclass, so its `__post_init__` checks
apply both at start-up and to run-time `ros2 param set` calls, which are refused with the reason.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

ConfigT = TypeVar("ConfigT")


class ParameterError(ValueError):
    """A parameter value that the node cannot run with."""


@functools.cache
def field_docstrings(config_cls: type) -> dict[str, str]:
    """The string literal written under each field of a dataclass, by field name."""
    try:
        source = inspect.getsource(config_cls)
    except (OSError, TypeError):  # classes defined interactively have no source to read
        return {}
    body = ast.parse(textwrap.dedent(source)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _parameter_type(annotation: Any) -> Parameter.Type:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return Parameter.Type.BOOL
    if annotation is int:
        return Parameter.Type.INTEGER
    if annotation is float:
        return Parameter.Type.DOUBLE
    if annotation is str:
        return Parameter.Type.STRING
    if origin in (list, tuple) and args:
        element = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
                   float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}.get(args[0])
        if element is not None:
            return element
    raise TypeError(f"no ROS parameter type for annotation {annotation!r}")


def _descriptor(name: str, kind: Parameter.Type, doc: str, metadata: typing.Mapping) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, type=kind.value, description=doc)
    if "range" in metadata:
        low, high = metadata["range"]
        if kind == Parameter.Type.INTEGER:
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
        elif kind == Parameter.Type.DOUBLE:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return descriptor


def _leaf_fields(config_cls: type, prefix: str = ""):
    """(dotted name, field, resolved type) for every non-dataclass field, depth first."""
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        annotation = hints[field.name]
        name = prefix + field.name
        if dataclasses.is_dataclass(annotation):
            yield from _leaf_fields(annotation, name + ".")
        else:
            yield name, field, annotation, config_cls


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


def _to_python(value: Any, annotation: Any) -> Any:
    if typing.get_origin(annotation) in (list, tuple):
        return typing.get_origin(annotation)(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def build_config(config_cls: type[ConfigT], values: dict[str, Any], prefix: str = "") -> ConfigT:
    """The config dataclass from dotted parameter values; ParameterError names the bad field."""
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for field in dataclasses.fields(config_cls):
        annotation = hints[field.name]
        name = prefix + field.name
        if dataclasses.is_dataclass(annotation):
            kwargs[field.name] = build_config(annotation, values, name + ".")
        elif name in values:
            kwargs[field.name] = _to_python(values[name], annotation)
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as error:
        if isinstance(error, ParameterError):
            raise
        raise ParameterError(f"{prefix or config_cls.__name__}: {error}") from None


def declare_config(node: Node, config_cls: type[ConfigT],
                   on_change: Callable[[ConfigT], None] | None = None) -> ConfigT:
    """Declare one parameter per config field and return the validated config.

    Raises ParameterError at start-up for values the config refuses. Later `set_parameters`
    calls are validated the same way; accepted changes are passed to `on_change`, refused ones
    are answered with the reason. Without `on_change` every field is read-only after start-up.
    """
    kinds = {}
    for name, field, annotation, owner in _leaf_fields(config_cls):
        kind = _parameter_type(annotation)
        kinds[name] = (kind, annotation)
        descriptor = _descriptor(name, kind, field_docstrings(owner).get(field.name, ""), field.metadata)
        descriptor.read_only = on_change is None
        default = _default(field)
        if isinstance(default, tuple):
            default = list(default)
        try:
            # rclpy types an empty list as BYTE_ARRAY; declaring the type keeps it unset until
            # overridden, and current_values() then leaves the field to the dataclass default.
            node.declare_parameter(name, kind if default == [] else default, descriptor)
        except Exception as error:  # rclpy raises several unrelated types for a bad override
            raise ParameterError(f"parameter '{name}': {error}") from None

    def current_values() -> dict[str, Any]:
        values = {}
        for name in kinds:
            try:
                values[name] = node.get_parameter(name).value
            except ParameterUninitializedException:
                continue
        return values

    config = build_config(config_cls, current_values())

    def validate(parameters: list[Parameter]) -> SetParametersResult:
        values = current_values()
        for parameter in parameters:
            if parameter.name not in kinds:
                continue
            if parameter.type_ != kinds[parameter.name][0]:
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{parameter.name}' must be {kinds[parameter.name][0].name}, "
                    f"got {parameter.type_.name}"))
            values[parameter.name] = parameter.value
        try:
            new_config = build_config(config_cls, values)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if on_change is not None:
            on_change(new_config)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(validate)
    return config


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_from_parameter_file(config_cls: type[ConfigT], path: Path, node_name: str,
                               overrides: dict[str, Any] | None = None) -> ConfigT:
    """A node's config from its ROS parameter file (the `/**` and `<node_name>` sections), for
    running the node's logic outside ROS (e.g. recording the simulated world straight to a bag)."""
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ParameterError(f"{path}: cannot read parameter file: {error}") from None
    values: dict[str, Any] = {}
    for section in ("/**", node_name, f"/{node_name}"):
        values.update(_flatten((document.get(section) or {}).get("ros__parameters") or {}))
    values.pop("use_sim_time", None)
    values.update(overrides or {})
    unknown = sorted(set(values) - {name for name, *_ in _leaf_fields(config_cls)})
    if unknown:
        raise ParameterError(f"{path}: unknown parameters for {node_name}: {', '.join(unknown)}")
    return build_config(config_cls, values)
