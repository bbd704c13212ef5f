"""Checks shared by the simulator's typed configs.

Every config is a dataclass whose fields may carry `metadata={"range": (low, high)}` (the same
convention robot_nodes.parameters turns into ROS parameter descriptors). `check_ranges` enforces
those bounds from `__post_init__`; `config_from_mapping` builds a config from parsed YAML and
rejects unknown keys and wrong types, naming the dotted field path.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")


class FieldError(ValueError):
    """A config value that cannot be used; the message starts with the dotted field path."""


def check_ranges(config: Any) -> None:
    """Raise ValueError('<field>: must be >= low, got value') for any field outside its range."""
    for field in dataclasses.fields(config):
        bounds = field.metadata.get("range")
        if bounds is None:
            continue
        low, high = bounds
        value = getattr(config, field.name)
        for element in value if isinstance(value, (tuple, list)) else (value,):
            if not element >= low:  # also refuses NaN
                raise ValueError(f"{field.name}: must be >= {low}, got {element}")
            if not element <= high:
                raise ValueError(f"{field.name}: must be <= {high}, got {element}")


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (list, tuple):
        element = typing.get_args(annotation)[0]
        return f"a list of {_type_name(element)}"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def _convert(value: Any, annotation: Any, path: str) -> Any:
    """The value as the annotated type, or FieldError naming `path`."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return config_from_mapping(annotation, value, path)
    if origin in (list, tuple):
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        if not isinstance(value, (list, tuple)):
            raise FieldError(f"{path}: must be {_type_name(annotation)}, got {value!r}")
        fixed_length = origin is tuple and Ellipsis not in typing.get_args(annotation)
        if fixed_length and len(value) != len(args):
            raise FieldError(f"{path}: must have {len(args)} elements, got {len(value)}")
        elements = [_convert(element, args[0], f"{path}[{index}]") for index, element in enumerate(value)]
        return origin(elements)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is float and is_number:
        return float(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (bool, str) and isinstance(value, annotation):
        return value
    raise FieldError(f"{path}: must be {_type_name(annotation)}, got {value!r}")


def config_from_mapping(config_cls: type[ConfigT], data: Any, path: str = "") -> ConfigT:
    """Build `config_cls` from a YAML mapping; missing keys keep their defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FieldError(f"{path or '<top level>'}: must be a mapping, got {data!r}")
    prefix = f"{path}." if path else ""
    fields = {field.name: field for field in dataclasses.fields(config_cls)}
    for key in data:
        if key not in fields:
            raise FieldError(f"{prefix}{key}: unknown key; expected one of: {', '.join(fields)}")
    hints = typing.get_type_hints(config_cls)
    values = {name: _convert(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return config_cls(**values)
    except FieldError:
        raise
    except ValueError as error:  # __post_init__ messages start with the field name
        raise FieldError(f"{prefix}{error}") from None
