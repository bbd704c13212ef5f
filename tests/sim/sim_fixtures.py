"""Helpers shared by the simulator tests (a uniquely named module: `conftest` is ambiguous to import)."""
from pathlib import Path

from sim.scenario import Scenario, load_scenario

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "config" / "scenarios"
SCENARIO_NAMES = ("urban_default", "parked_trucks", "dense_clutter")


def scenario(name: str) -> Scenario:
    """A shipped scenario by name."""
    return load_scenario(SCENARIO_DIR / f"{name}.yaml")
