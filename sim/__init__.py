"""The embedded simulated world: a multi-lane urban road with traffic, pedestrians, an ego car
and its ray-cast lidar and camera (no ROS; robot_nodes.sim_world wraps it).

Entry points: sim.scenario.load_scenario, sim.world.World, sim.controller.LaneKeepingController.
"""
