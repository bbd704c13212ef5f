"""Fixtures for the simulator tests."""
import pytest

from sim.world import World
from sim_fixtures import scenario


@pytest.fixture(scope="module")
def urban_world() -> World:
    """urban_default after 3 s of driving straight at 8 m/s; tests must not step it further."""
    world = World(scenario("urban_default"), seed=0)
    for _ in range(30):
        world.step(0.1, 8.0, 0.0)
    return world
