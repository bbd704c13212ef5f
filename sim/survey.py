"""A mapping drive of the static world: posed RGB-D frames for a Gaussian-splatting model.

The camera (the world's own mount and field of view, at the survey's resolution) is placed along
the centre lines of the lanes that drive the ego's way, every `spacing` metres over an s-range,
facing the lane's direction and turned by each of `yaw_offsets`. It sees scenery, parked and
staged objects but no traffic or pedestrians (World.static_camera_frame), so what is built from
the frames is the world a remote digital twin can hold. The camera's colours depend on which side
of a surface faces it, so the frames (not the meshes) are the source of the model's colours.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.camera import Camera
from sim.transforms import planar_pose_matrix
from sim.validation import check_ranges
from sim.world import World


@dataclass
class SurveyConfig:
    """Where the mapping drive takes its frames."""

    spacing: float = field(default=8.0, metadata={"range": (0.1, 1000.0)})
    """Distance between survey stations along the road, metres."""
    yaw_offsets: tuple[float, ...] = field(default=(-0.4, 0.0, 0.4), metadata={"range": (-math.pi, math.pi)})
    """Headings of the camera at each station relative to the lane's driving direction, radians."""
    width: int = field(default=320, metadata={"range": (8, 4096)})
    """Survey image width, pixels (the world camera's field of view is kept)."""
    height: int = field(default=240, metadata={"range": (8, 4096)})
    """Survey image height, pixels."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class SurveyFrame:
    """One posed frame of the static world (what mixed_reality.build and mixed_reality.fit consume)."""

    rgb: np.ndarray
    """Colour image, uint8 (H, W, 3)."""
    depth: np.ndarray
    """Optical-frame z, metres, +inf for the sky, float32 (H, W)."""
    intrinsics: np.ndarray
    """Camera matrix K (3, 3)."""
    camera_to_map: np.ndarray
    """4x4 transform of the optical frame (z forward, x right, y down) to map."""


def survey_poses(world: World, s_range: tuple[float, float], config: SurveyConfig) -> list[tuple[float, float, float]]:
    """base_link poses (x, y, yaw) of the drive: every station × lane of the ego's driving direction × yaw offset."""
    road = world.road
    low, high = max(0.0, min(s_range)), min(road.length, max(s_range))
    stations = np.arange(low, high + 1e-9, config.spacing)
    direction = road.lane_directions[world.scenario.ego.lane]
    lanes = np.flatnonzero(road.lane_directions == direction)
    poses = []
    for s in stations:
        heading = float(road.heading(s)) + (0.0 if direction > 0 else math.pi)
        for lane in lanes:
            x, y = road.to_map(s, road.lane_offsets[lane])
            poses += [(float(x), float(y), math.remainder(heading + offset, 2 * math.pi)) for offset in config.yaw_offsets]
    return poses


class SurveyFrames(Sequence[SurveyFrame]):
    """The frames of a mapping drive, each rendered when it is asked for (they are many and large)."""

    def __init__(self, world: World, poses: list[tuple[float, float, float]], camera: Camera) -> None:
        self.world = world
        self.poses = poses
        """base_link pose (x, y, yaw) of each frame."""
        self.camera = camera
        self._optical_to_base_link = camera.config.optical_to_base_link()

    def __len__(self) -> int:
        return len(self.poses)

    def __getitem__(self, index: int) -> SurveyFrame:  # type: ignore[override] - no slices
        pose = self.poses[index]
        frame = self.world.static_camera_frame(pose, self.camera)
        return SurveyFrame(frame.rgb, frame.depth, self.camera.intrinsics.copy(),
                           planar_pose_matrix(*pose) @ self._optical_to_base_link)


def survey_frames(world: World, s_range: tuple[float, float], config: SurveyConfig = SurveyConfig()) -> SurveyFrames:
    """The frames of the mapping drive over s_range (metres along the road), one per survey pose,
    taken by the world's camera at the survey's resolution."""
    camera_config = world.camera_config
    scale = config.width / camera_config.width
    # Explicit intrinsics scale with the image (pixel centres: c' = (c + 0.5) * scale - 0.5); zeros stay derived.
    camera = Camera(dataclasses.replace(
        camera_config, width=config.width, height=config.height, fx=camera_config.fx * scale,
        fy=camera_config.fy * scale, cx=(camera_config.cx + 0.5) * scale - 0.5 if camera_config.cx else 0.0,
        cy=(camera_config.cy + 0.5) * scale - 0.5 if camera_config.cy else 0.0))
    return SurveyFrames(world, survey_poses(world, s_range, config), camera)
