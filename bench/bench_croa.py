"""Latency of one CROA planning cycle (every convex-concave iteration included); prints Markdown.

    python bench/bench_croa.py [--cycles 60] [--rebuilt-cycles 8]

The scene: three lanes driving +x, a truck stopped in the right lane hiding a parked car, parked
cars and a bus along the right kerb, and moving cars in the other lanes (constant-velocity
predictions): twelve obstacles, the nearest ten constrained, horizon 20 x 0.1 s. The ego drives the plans in closed
loop, so each cycle starts from the previous plan as it would on the robot. Rows: the problem
compiled once (DPP) and re-solved with each solver, the collision-only MPC, and the same problem
rebuilt in cvxpy every cycle. The first cycle (compilation) is reported on its own.
"""
from __future__ import annotations

import argparse
import datetime
import time

import numpy as np
import torch

from evaluation.detector_report import machine_description
from perception.objects import Box3D
from planners.croa.config import CroaConfig
from planners.croa.planner import CroaPlanner, PlannerOptions
from planners.croa.scene import Corridor, EgoState, Obstacle, PlanningScene


def scene_factory(config: CroaConfig):
    steps, dt = config.horizon, config.time_step
    centerline = np.column_stack([np.linspace(-50.0, 600.0, 326), np.full(326, -5.25)])
    corridor = Corridor(centerline, right=-5.25, left=5.25)
    target = Obstacle.standing(Box3D([48.0, -8.75, 0.75], [4.5, 1.8, 1.5], 0.0), steps, 2)
    standing = [Obstacle.standing(Box3D([38.0, -8.75, 1.75], [10.0, 2.5, 3.5], 0.0), steps, 1), target]
    standing += [Obstacle.standing(Box3D([x, -11.9, 0.8], [4.5, 1.8, 1.6], 0.0), steps, 10 + index)
                 for index, x in enumerate((12.0, 20.0, 58.0, 66.0))]
    standing.append(Obstacle.standing(Box3D([30.0, -11.9, 1.6], [12.0, 2.55, 3.2], 0.0), steps, 20))
    movers = [(-15.0, -1.75, 8.0, 30), (25.0, -1.75, 7.5, 31), (60.0, -5.25, 7.0, 32),  # our direction
              (40.0, 1.75, -9.0, 33), (70.0, 5.25, -8.0, 34)]  # oncoming

    def at(ego: EgoState, now: float) -> PlanningScene:
        times = now + np.arange(steps + 1) * dt
        moving = [Obstacle(4.5, 1.8, 1.5, np.column_stack([x + speed * times, np.full(steps + 1, y),
                                                           np.zeros(steps + 1)]), object_id)
                  for x, y, speed, object_id in movers]
        return PlanningScene(ego, corridor, standing + moving, target)
    return at


def closed_loop(make_planner, config: CroaConfig, cycles: int):
    """(cycle seconds, iterations, fallbacks, first cycle seconds, obstacles per cycle)."""
    scene_at = scene_factory(config)
    ego = EgoState(0.0, -5.25, 0.0, 7.0)
    planner = make_planner()
    times, iterations, fallbacks, obstacles, first = [], [], 0, [], None
    for cycle in range(cycles + 1):
        if cycle and getattr(planner, "rebuilt", False):
            planner = make_planner()
        started = time.perf_counter()
        plan = planner.plan(scene_at(ego, cycle * config.time_step))
        elapsed = time.perf_counter() - started
        if cycle == 0:
            first = elapsed
        else:
            times.append(elapsed)
            iterations.append(plan.iterations)
            fallbacks += plan.fallback
            obstacles.append(len(plan.obstacle_ids))
        x, y, yaw, speed = plan.states[1]
        ego = EgoState(x, y, yaw, speed, float(plan.controls[0, 1]))
    return np.array(times), iterations, fallbacks, first, obstacles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=60, help="timed closed-loop cycles per row (default 60)")
    parser.add_argument("--rebuilt-cycles", type=int, default=8, help="cycles of the rebuilt-every-cycle row")
    options = parser.parse_args()

    rows = []
    for label, solver, occlusion, rebuilt in (("CROA, compiled once (DPP)", "CLARABEL", True, False),
                                              ("CROA, compiled once (DPP)", "SCS", True, False),
                                              ("collision-avoidance MPC only, compiled once", "CLARABEL", False, False),
                                              ("CROA, rebuilt in cvxpy every cycle", "CLARABEL", True, True)):
        config = CroaConfig(solver=solver)

        def make_planner(config=config, occlusion=occlusion, rebuilt=rebuilt):
            planner = CroaPlanner(config, options=PlannerOptions(occlusion=occlusion))
            planner.rebuilt = rebuilt
            return planner
        cycles = options.rebuilt_cycles if rebuilt else options.cycles
        times, iterations, fallbacks, first, obstacles = closed_loop(make_planner, config, cycles)
        rows.append((label, solver, times, iterations, fallbacks, first, obstacles))

    machine = machine_description(torch.device("cpu"))
    print(f"CROA planning cycle, {datetime.date.today()}, {machine['cpu']}, {machine['cores']} cores; "
          f"horizon {CroaConfig().horizon} x {CroaConfig().time_step} s, closed loop\n")
    print("| problem | solver | cycles | obstacles (median) | CCP iterations (median) | median (ms) | p90 (ms) "
          "| max (ms) | first cycle (ms) | fallbacks |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, solver, times, iterations, fallbacks, first, obstacles in rows:
        print(f"| {label} | {solver} | {len(times)} | {np.median(obstacles):.0f} | {np.median(iterations):.0f} | "
              f"{1e3 * np.median(times):.1f} | {1e3 * np.percentile(times, 90):.1f} | {1e3 * times.max():.1f} | "
              f"{1e3 * first:.0f} | {fallbacks} |")


if __name__ == "__main__":
    main()
