"""The simulated world: road, scenery, parked, staged and moving road users, the ego car and its sensors.

Frames (REP-103/105): `map` as described in sim.scenario (road along +x from the origin,
right-hand traffic: lanes with d < 0 drive +x); `base_link` is the ego's rear-axle centre on the
road (z = 0), x forward; the lidar frame is `lidar_config.mount` on base_link; the camera image is
in the optical frame `camera_config.optical_to_base_link()`. Units: metres, radians, seconds.

Everything random is drawn from numpy Generators spawned from the seed, one stream per concern
(layout, traffic, pedestrians, lidar noise), so the same scenario and seed give bit-identical
sensor data and ground truth for the same sequence of calls.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from perception.objects import Box3D, GroundTruthObject, ObjectClass
from sim.camera import Camera, CameraConfig, CameraFrame
from sim.ego import EgoVehicle
from sim.geometry import BoxSet, rectangles_overlap
from sim.layout import generate_layout
from sim.lidar import Lidar, LidarConfig, LidarScan
from sim.materials import Material
from sim.meshes import TriangleSoup
from sim.object_models import OBJECT_MODELS
from sim.obstacles import AgentState, Obstacles
from sim.pedestrians import Pedestrians
from sim.raycast import RayHits, SceneRaycaster
from sim.road import RoadGeometry
from sim.scenario import Scenario
from sim.traffic import Traffic
from sim.transforms import planar_pose_matrix

__all__ = ["World", "LidarScan", "CameraFrame"]

AGENT_TIME_STEP = 0.05
"""Longest integration step of the ego and the agents, s; World.step subdivides longer steps."""
GROUND_BEYOND_BUILDINGS = 30.0
"""Ground extends this far beyond the deepest possible building, metres."""
COLLISION_SEARCH_RADIUS = 25.0
"""Only objects whose centre is this close to the ego are tested for collision, metres."""
SIGHT_TOLERANCE = 0.05
"""A sight line counts as blocked only by a hit more than this short of its end point, metres."""


class World:
    """One episode of a scenario; see the module docstring for frames and determinism."""

    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self.scenario = scenario
        self.road = RoadGeometry(scenario.road)
        self._lidar = Lidar(scenario.lidar)
        self._camera = Camera(scenario.camera)
        self._lane_centerlines = self.road.centerlines()
        self._layout_seed: int | None = None
        self.seed = seed
        """Seed of the current episode."""
        self.reset()

    # --- episode -------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Back to t = 0 with the same seed, or with a new one."""
        if seed is not None:
            self.seed = int(seed)
        layout_rng, traffic_rng, pedestrian_rng, lidar_rng = (
            np.random.default_rng(stream) for stream in np.random.SeedSequence(self.seed).spawn(4))
        if self._layout_seed != self.seed:
            self._layout = generate_layout(self.scenario, self.road, layout_rng)
            clutter = self.scenario.clutter
            ground_offset = (self.road.half_width + self.scenario.road.sidewalk_width + clutter.building_setback_max
                             + clutter.building_depth_max + GROUND_BEYOND_BUILDINGS)
            self._raycaster = SceneRaycaster(self._layout.triangles(self.road, ground_offset))
            # Staged objects stand still where traffic and pedestrians can meet them (parked ones stay off the lanes).
            staged = self._layout.staged
            self._staged_obstacles = Obstacles.of_boxes(self.road, staged, np.zeros((len(staged), 2)))
            self._layout_seed = self.seed
        self._lidar_rng = lidar_rng
        self.time = 0.0
        """Seconds since reset."""

        ego_config = self.scenario.ego
        lane_direction = self.road.lane_directions[ego_config.lane]
        x, y = self.road.to_map(ego_config.start_s, self.road.lane_offsets[ego_config.lane])
        yaw = self.road.heading(ego_config.start_s) + (0.0 if lane_direction > 0 else math.pi)
        self._ego = EgoVehicle(ego_config, float(x), float(y), math.remainder(float(yaw), 2 * math.pi),
                               ego_config.speed)

        next_id = itertools.count(len(self._layout.object_ids) + 1).__next__
        self._traffic = Traffic(self.scenario.traffic, self.road, traffic_rng, next_id)
        self._pedestrians = Pedestrians(self.scenario.pedestrians, self.road, pedestrian_rng, next_id)
        window = self._window()
        self._pedestrians.populate(window, self._ego_s(), self._with_staged([self._ego_obstacle()]))
        self._traffic.populate(window, self._with_staged([self._pedestrians.obstacles(), self._ego_obstacle()]))
        self._latest_counts: dict[int, int] = {}
        self._dynamic_stale = True

    def step(self, dt: float, linear_velocity: float, angular_velocity: float) -> None:
        """Advance the ego under a /cmd_vel-like command (m/s, rad/s) and every agent by dt seconds."""
        if not dt >= 0.0:
            raise ValueError(f"dt: must be >= 0, got {dt}")
        if dt == 0.0:
            return
        substeps = max(1, math.ceil(dt / AGENT_TIME_STEP - 1e-9))
        step = dt / substeps
        for index in range(substeps):
            now = self.time + (index + 1) * step
            self._ego.step(step, linear_velocity, angular_velocity)
            ego = self._ego_obstacle()
            self._pedestrians.step(step, now, self._with_staged([self._traffic.obstacles(), ego]))
            self._traffic.step(step, now, self._with_staged([self._pedestrians.obstacles(), ego]),
                               self._pedestrians.intents())
        self.time += dt
        window, ego = self._window(), self._ego_obstacle()
        self._pedestrians.respawn(window, self._ego_s(), self.scenario.spawn.min_distance, self.time,
                                  self._with_staged([self._traffic.obstacles(), ego]))
        self._traffic.respawn(window, self._with_staged([self._pedestrians.obstacles(), ego]))
        self._dynamic_stale = True

    def _with_staged(self, parts: list[Obstacles]) -> Obstacles:
        """The obstacles `parts` and, after them, the staged objects (standing still)."""
        return Obstacles.concatenate(parts + [self._staged_obstacles] if len(self._staged_obstacles) else parts)

    # --- ego -----------------------------------------------------------------------------------

    @property
    def ego_pose(self) -> tuple[float, float, float]:
        """base_link in map: (x, y, yaw), metres and radians."""
        return self._ego.x, self._ego.y, self._ego.yaw

    @property
    def ego_velocity(self) -> tuple[float, float]:
        """(forward speed m/s, yaw rate rad/s)."""
        return self._ego.speed, self._ego.yaw_rate

    def ego_box(self) -> Box3D:
        """The ego's body in map."""
        box = self._ego.box()
        return Box3D(box.centers[0], box.sizes[0], box.yaws[0])

    def _ego_s(self) -> float:
        return float(self.road.to_frenet(self._ego.x, self._ego.y)[0])

    def _ego_obstacle(self) -> Obstacles:
        velocity = self._ego.speed * np.array([[math.cos(self._ego.yaw), math.sin(self._ego.yaw)]])
        return Obstacles.of_boxes(self.road, self._ego.box(), velocity)

    def _window(self) -> tuple[float, float]:
        """Range of s where agents live: `spawn.behind` behind the ego to `spawn.ahead` ahead of it."""
        ego_s = self._ego_s()
        forward = math.cos(self._ego.yaw - float(self.road.heading(ego_s))) >= 0.0
        behind, ahead = self.scenario.spawn.behind, self.scenario.spawn.ahead
        low, high = (ego_s - behind, ego_s + ahead) if forward else (ego_s - ahead, ego_s + behind)
        return max(low, 0.0), min(high, self.road.length)

    # --- configuration and map -----------------------------------------------------------------

    @property
    def lidar_config(self) -> LidarConfig:
        """The lidar in use, with its mount on base_link."""
        return self.scenario.lidar

    @property
    def camera_config(self) -> CameraConfig:
        """The camera in use, with its mount on base_link."""
        return self.scenario.camera

    @property
    def camera_intrinsics(self) -> np.ndarray:
        """Camera matrix K (3, 3) of the optical frame."""
        return self._camera.intrinsics.copy()

    @property
    def lane_centerlines(self) -> list[np.ndarray]:
        """Each lane's centre line in map, (M, 2) points in order of increasing s, lane 0 (rightmost) first."""
        return [line.copy() for line in self._lane_centerlines]

    @property
    def lane_directions(self) -> list[int]:
        """+1 for lanes driven in the order of their centre-line points, -1 for the opposite."""
        return [int(direction) for direction in self.road.lane_directions]

    def lidar_origin(self) -> np.ndarray:
        """The lidar's optical centre in map now, metres (3,)."""
        return (planar_pose_matrix(*self.ego_pose) @ self.scenario.lidar.mount.matrix())[:3, 3].copy()

    # --- sensors -------------------------------------------------------------------------------

    def _agent_states(self) -> list[AgentState]:
        return [self._traffic.state(), self._pedestrians.agent_state()]

    def _raycaster_now(self) -> SceneRaycaster:
        """The ray caster with the agents where they are now."""
        if self._dynamic_stale:
            soups = []
            states = self._agent_states()
            for state in states:
                for label in np.unique(state.classes):
                    chosen = state.classes == label
                    material = Material.PEDESTRIAN if label == ObjectClass.PEDESTRIAN else Material.VEHICLE
                    soups.append(OBJECT_MODELS[label].mesh.instantiate(
                        state.boxes.subset(chosen), state.ids[chosen], material, state.colors[chosen]))
            self._raycaster.set_dynamic(TriangleSoup.concatenate(soups),
                                        BoxSet.concatenate([state.boxes for state in states]))
            self._dynamic_stale = False
        return self._raycaster

    def lidar_scan(self) -> LidarScan:
        """One instantaneous sweep at the current time; also updates ground-truth point counts."""
        points, point_object_ids = self._lidar.scan(self._raycaster_now(), self.ego_pose, self._lidar_rng)
        counts = dict.fromkeys(self._object_ids(), 0)
        seen, seen_counts = np.unique(point_object_ids[point_object_ids >= 0], return_counts=True)
        counts.update(zip(seen.tolist(), seen_counts.tolist()))
        self._latest_counts = counts
        return LidarScan(points, point_object_ids, counts, self.time)

    def cast_rays(self, origins: np.ndarray, ends: np.ndarray) -> RayHits:
        """First hits on the segments from origins (N, 3) or (3,) to ends (N, 3), in map, against the
        static world and the agents where they are now; distances are fractions of each segment."""
        ends = np.asarray(ends, dtype=np.float64).reshape(-1, 3)
        origins = np.broadcast_to(np.asarray(origins, dtype=np.float64), ends.shape)
        rays = np.ascontiguousarray(np.concatenate([origins, ends - origins], axis=1), dtype=np.float32)
        return self._raycaster_now().cast(rays, np.zeros(len(rays), dtype=np.float32))

    def sight_blocked(self, origin: np.ndarray, points: np.ndarray, object_id: int) -> np.ndarray:
        """Whether the sight line from origin (3,) to each point (N, 3), in map, meets something
        other than object `object_id` more than SIGHT_TOLERANCE before the point, boolean (N,)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        origin = np.asarray(origin, dtype=np.float64).reshape(3)
        if len(points) == 0:
            return np.zeros(0, dtype=bool)
        hits = self.cast_rays(origin, points)
        lengths = np.linalg.norm(points - origin, axis=1)
        short = hits.distances * lengths < lengths - SIGHT_TOLERANCE
        return short & (hits.object_ids != object_id)

    def camera_frame(self) -> CameraFrame:
        """One rendered RGB-D frame at the current time."""
        rgb, depth, object_ids = self._camera.render(self._raycaster_now(), self.ego_pose)
        return CameraFrame(rgb, depth, object_ids, self.time)

    def static_camera_frame(self, ego_pose: tuple[float, float, float], camera: Camera | None = None) -> CameraFrame:
        """A frame of `camera` (default: the world's) with base_link at ego_pose (x, y, yaw) in map,
        seeing only what never moves: scenery, parked and staged objects, no traffic or pedestrians
        (a mapping drive of the static world). The next sensor call puts the agents back."""
        self._raycaster.set_dynamic(TriangleSoup.empty(), BoxSet.empty())
        self._dynamic_stale = True
        rgb, depth, object_ids = (camera or self._camera).render(self._raycaster, ego_pose)
        return CameraFrame(rgb, depth, object_ids, self.time)

    # --- ground truth --------------------------------------------------------------------------

    def _object_ids(self) -> list[int]:
        return self._layout.object_ids.tolist() + [int(i) for state in self._agent_states() for i in state.ids]

    @property
    def target_id(self) -> int | None:
        """Ground-truth id of the scenario's staged target, None when it has none."""
        index = self._layout.target_index
        return None if index < 0 else int(self._layout.staged_ids[index])

    @property
    def staged_ids(self) -> list[int]:
        """Ground-truth ids of the scenario's staged objects, in the scenario's order."""
        return self._layout.staged_ids.tolist()

    def ground_truth(self) -> list[GroundTruthObject]:
        """Every parked, staged and moving road user in map; point counts from the latest lidar_scan."""
        layout = self._layout
        boxes = layout.object_boxes
        objects = [GroundTruthObject(
            object_id=int(object_id), label=ObjectClass(int(label)),
            box=Box3D(boxes.centers[index], boxes.sizes[index], boxes.yaws[index]),
            velocity=np.zeros(2), num_lidar_points=self._latest_counts.get(int(object_id), 0), is_static=True,
        ) for index, (object_id, label) in enumerate(zip(layout.object_ids, layout.object_classes))]
        for state in self._agent_states():
            objects += [GroundTruthObject(
                object_id=int(object_id), label=ObjectClass(int(state.classes[index])),
                box=Box3D(state.boxes.centers[index], state.boxes.sizes[index], state.boxes.yaws[index]),
                velocity=state.velocities[index].copy(), yaw_rate=float(state.yaw_rates[index]),
                num_lidar_points=self._latest_counts.get(int(object_id), 0), is_static=False,
            ) for index, object_id in enumerate(state.ids)]
        return objects

    def object_box(self, object_id: int) -> Box3D:
        """The box of a parked, staged or moving road user now; KeyError for an id not in the world."""
        layout = self._layout
        for boxes, ids in [(layout.object_boxes, layout.object_ids)] + [
                (state.boxes, state.ids) for state in self._agent_states()]:
            found = np.flatnonzero(ids == object_id)
            if len(found):
                return Box3D(boxes.centers[found[0]], boxes.sizes[found[0]], boxes.yaws[found[0]])
        raise KeyError(f"object {object_id} is not in the world now")

    def latest_point_count(self, object_id: int) -> int:
        """Lidar returns on object `object_id` in the latest lidar_scan (0 before the first)."""
        return self._latest_counts.get(int(object_id), 0)

    def in_collision(self) -> bool:
        """Whether the ego's footprint overlaps a road user, a building, wall or pole, or a kerb."""
        ego = self._ego.box()
        corners = ego.corners_bev()[0]
        _, lateral = self.road.to_frenet(corners[:, 0], corners[:, 1])
        if np.any(np.abs(lateral) > self.road.half_width):
            return True
        others = BoxSet.concatenate([self._layout.scenery, self._layout.object_boxes]
                                    + [state.boxes for state in self._agent_states()])
        near = np.linalg.norm(others.centers[:, :2] - ego.centers[0, :2], axis=1) < (
            COLLISION_SEARCH_RADIUS + 0.5 * np.linalg.norm(others.sizes[:, :2], axis=1))
        return bool(np.any(rectangles_overlap(corners[None], others.subset(near).corners_bev())))
