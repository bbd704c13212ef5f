"""The static world drawn from a scenario and a seed: buildings, walls, poles, parked vehicles and the
scenario's staged objects."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.objects import ObjectClass
from sim.geometry import BoxSet, rectangles_overlap
from sim.materials import BASE_COLOR, FACADE_COLORS, VEHICLE_PAINTS, Material, draw_colors
from sim.meshes import NO_OBJECT, UNIT_BOX, TriangleSoup
from sim.object_models import OBJECT_MODELS, VEHICLE_CLASSES, draw_sizes, draw_vehicle_classes
from sim.pedestrians import CLOTHING_COLORS
from sim.road import RoadGeometry
from sim.scenario import ROAD_END_MARGIN, ClutterConfig, ParkedConfig, Scenario
from sim.transforms import wrap_angle

SIDES = (-1, 1)
"""Right (d < 0) and left (d > 0) side of the road."""
POLE_SIZE = (0.25, 0.25, 6.0)
"""Street-light pole length, width, height, metres."""
POLE_KERB_OFFSET = 0.5
"""Poles stand this far behind the kerb, metres."""
WALL_THICKNESS = 0.3
"""Metres."""
KERB_CLEARANCE = 0.15
"""Gap between a parked vehicle and the kerb, metres."""
PARKING_SKEW = 0.05
"""Largest sideways offset of a parked vehicle's corner from parking perfectly straight, metres."""
CROSSING_CLEARANCE = 1.5
"""Nothing is parked or built on a sidewalk this close to a crossing's edges, metres."""
STAGED_CLEARANCE = 0.5
"""Randomly parked vehicles and poles closer than this to a staged object's footprint are left out, metres."""


@dataclass
class StaticLayout:
    """Everything that never moves, in map."""

    scenery: BoxSet
    """Buildings, walls and poles."""
    scenery_materials: np.ndarray
    """Material per scenery box, uint8 (K,)."""
    scenery_colors: np.ndarray
    """Colour per scenery box, uint8 (K, 3)."""
    parked: BoxSet
    """Parked vehicles (box centres at half height)."""
    parked_ids: np.ndarray
    """Ground-truth object ids of the parked vehicles, int64 (P,)."""
    parked_classes: np.ndarray
    """ObjectClass value per parked vehicle, int64 (P,)."""
    parked_colors: np.ndarray
    """Paint per parked vehicle, uint8 (P, 3)."""
    staged: BoxSet
    """The scenario's staged objects, in its order (box centres at half height)."""
    staged_ids: np.ndarray
    """Ground-truth object ids of the staged objects, P+1..P+S, int64 (S,)."""
    staged_classes: np.ndarray
    """ObjectClass value per staged object, int64 (S,)."""
    staged_colors: np.ndarray
    """Paint or clothing colour per staged object, uint8 (S, 3)."""
    target_index: int
    """Index into the staged objects of the scenario's target, -1 for none."""

    @property
    def object_boxes(self) -> BoxSet:
        """Every static road user: the parked vehicles, then the staged objects."""
        return BoxSet.concatenate([self.parked, self.staged])

    @property
    def object_ids(self) -> np.ndarray:
        """Ground-truth ids of object_boxes, int64 (P + S,)."""
        return np.concatenate([self.parked_ids, self.staged_ids])

    @property
    def object_classes(self) -> np.ndarray:
        """ObjectClass values of object_boxes, int64 (P + S,)."""
        return np.concatenate([self.parked_classes, self.staged_classes])

    def triangles(self, road: RoadGeometry, ground_offset: float) -> TriangleSoup:
        """The road surface out to |d| = ground_offset, scenery, parked and staged objects as one soup."""
        soups = [road.surface(ground_offset)]
        for material in np.unique(self.scenery_materials):
            chosen = self.scenery_materials == material
            soups.append(UNIT_BOX.instantiate(self.scenery.subset(chosen), np.full(chosen.sum(), NO_OBJECT),
                                              int(material), self.scenery_colors[chosen]))
        boxes, ids, classes = self.object_boxes, self.object_ids, self.object_classes
        colors = np.concatenate([self.parked_colors, self.staged_colors])
        for label in OBJECT_MODELS:  # the vehicle classes, then pedestrians (staged ones only)
            chosen = classes == label
            if label not in VEHICLE_CLASSES and not np.any(chosen):
                continue
            material = Material.PEDESTRIAN if label == ObjectClass.PEDESTRIAN else Material.VEHICLE
            soups.append(OBJECT_MODELS[label].mesh.instantiate(boxes.subset(chosen), ids[chosen], material,
                                                               colors[chosen]))
        return TriangleSoup.concatenate(soups)


def _near_crossing(road: RoadGeometry, s_low: np.ndarray, s_high: np.ndarray) -> np.ndarray:
    """Which intervals [s_low, s_high] come within CROSSING_CLEARANCE of a crossing."""
    half = road.config.crosswalk_width / 2.0 + CROSSING_CLEARANCE
    return np.any((s_low[:, None] < road.crosswalks[None, :] + half)
                  & (s_high[:, None] > road.crosswalks[None, :] - half), axis=1)


def _frenet_boxes(road: RoadGeometry, s, d, sizes: np.ndarray, base_z, reverse=False) -> BoxSet:
    """Boxes placed by Frenet centre, standing on base_z, aligned with the road (or against it)."""
    s, d = np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64)
    xy = road.to_map(s, d).reshape(-1, 2)
    centers = np.column_stack([xy, base_z + sizes[:, 2] / 2.0])
    return BoxSet(centers, sizes, road.heading(s) + np.where(reverse, np.pi, 0.0))


def _row(rng: np.random.Generator, start: float, end: float, length_low: float, length_high: float,
         gap_low: float, gap_high: float) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of consecutive segments with random lengths and gaps covering [start, end)."""
    count = int(np.ceil((end - start) / (length_low + gap_low))) + 1
    lengths = rng.uniform(length_low, length_high, count)
    gaps = rng.uniform(gap_low, gap_high, count)
    starts = start + np.concatenate([[0.0], np.cumsum(lengths + gaps)[:-1]])
    inside = starts + lengths <= end
    return starts[inside], lengths[inside]


def _clutter(config: ClutterConfig, road: RoadGeometry, rng: np.random.Generator):
    """Scenery boxes, their materials and colours on both sides of the road."""
    sidewalk_edge = road.half_width + road.config.sidewalk_width
    extent = (-ROAD_END_MARGIN / 2.0, road.length + ROAD_END_MARGIN / 2.0)
    boxes, materials, colors = [], [], []
    for side in SIDES:
        starts, frontages = _row(rng, *extent, config.building_frontage_min, config.building_frontage_max,
                                 config.building_gap_min, config.building_gap_max)
        count = len(starts)
        setbacks = rng.uniform(config.building_setback_min, config.building_setback_max, count)
        depths = rng.uniform(config.building_depth_min, config.building_depth_max, count)
        heights = rng.uniform(config.building_height_min, config.building_height_max, count)
        boxes.append(_frenet_boxes(road, starts + frontages / 2.0, side * (sidewalk_edge + setbacks + depths / 2.0),
                                   np.column_stack([frontages, depths, heights]), 0.0))
        materials.append(np.full(count, Material.BUILDING))
        colors.append(draw_colors(rng, FACADE_COLORS, count))

        gap_starts, gap_ends = starts[:-1] + frontages[:-1], starts[1:]
        walled = (rng.random(len(gap_starts)) < config.wall_probability) & ~_near_crossing(road, gap_starts, gap_ends)
        gap_starts, gap_ends = gap_starts[walled], gap_ends[walled]
        wall_sizes = np.column_stack([gap_ends - gap_starts, np.full(len(gap_starts), WALL_THICKNESS),
                                      np.full(len(gap_starts), config.wall_height)])
        wall_offsets = np.full(len(gap_starts), side * (sidewalk_edge + WALL_THICKNESS / 2.0))
        boxes.append(_frenet_boxes(road, (gap_starts + gap_ends) / 2.0, wall_offsets, wall_sizes, 0.0))
        materials.append(np.full(len(gap_starts), Material.BUILDING))
        colors.append(draw_colors(rng, FACADE_COLORS, len(gap_starts)))

        if config.pole_spacing > 0.0:
            pole_s = np.arange(rng.uniform(0.0, config.pole_spacing), road.length, config.pole_spacing)
            pole_s = pole_s[~_near_crossing(road, pole_s, pole_s)]
            boxes.append(_frenet_boxes(road, pole_s, np.full(len(pole_s), side * (road.half_width + POLE_KERB_OFFSET)),
                                       np.tile(POLE_SIZE, (len(pole_s), 1)), road.config.kerb_height))
            materials.append(np.full(len(pole_s), Material.POLE))
            colors.append(np.tile(BASE_COLOR[Material.POLE], (len(pole_s), 1)))
    return BoxSet.concatenate(boxes), np.concatenate(materials).astype(np.uint8), np.concatenate(colors)


def _parked(config: ParkedConfig, road: RoadGeometry, rng: np.random.Generator):
    """Parked vehicle boxes and classes along the enabled kerbs."""
    boxes, classes = [], []
    mean_length = np.mean([OBJECT_MODELS[label].size_min[0] + OBJECT_MODELS[label].size_max[0]
                           for label in VEHICLE_CLASSES]) / 2.0
    enabled = [side for side, on in zip(SIDES, (config.right_side, config.left_side)) if on]
    for side in enabled if config.fill > 0.0 else ():
        slots = int(road.length / (mean_length + config.gap_min)) + 1
        labels = draw_vehicle_classes(rng, config.class_mix.probabilities(), slots)
        sizes = draw_sizes(rng, labels)
        occupied = rng.random(slots) < config.fill
        # An empty slot is as long as an average vehicle, so the kerb is filled about `fill` of its length.
        lengths = np.where(occupied, sizes[:, 0], mean_length)
        gaps = rng.uniform(config.gap_min, config.gap_max, slots)
        starts = np.concatenate([[gaps[0]], gaps[0] + np.cumsum(lengths + gaps)[:-1]])
        keep = occupied & (starts + lengths <= road.length) & ~_near_crossing(road, starts, starts + lengths)
        offsets = side * (road.half_width - KERB_CLEARANCE - sizes[keep, 1] / 2.0)
        placed = _frenet_boxes(road, starts[keep] + lengths[keep] / 2.0, offsets, sizes[keep], 0.0, reverse=side > 0)
        skew = rng.uniform(-1.0, 1.0, len(placed)) * PARKING_SKEW / (placed.sizes[:, 0] / 2.0)
        placed.yaws = wrap_angle(placed.yaws + skew)
        boxes.append(placed)
        classes.append(labels[keep])
    if not boxes:
        return BoxSet.empty(), np.zeros(0, dtype=np.int64)
    return BoxSet.concatenate(boxes), np.concatenate(classes).astype(np.int64)


def _staged(scenario: Scenario, road: RoadGeometry, rng: np.random.Generator):
    """Boxes, classes and colours of the scenario's staged objects, in its order."""
    boxes, classes, colors = [], [], []
    for staged in scenario.staged:
        label = ObjectClass[staged.label.upper()]
        model = OBJECT_MODELS[label]
        size = np.array(staged.size if staged.size else np.add(model.size_min, model.size_max) / 2.0, dtype=np.float64)
        s = scenario.staged_s(staged)
        base_z = road.config.kerb_height if abs(staged.d) > road.half_width else 0.0
        box = _frenet_boxes(road, [s], [staged.d], size[None, :], base_z)
        box.yaws = wrap_angle(box.yaws + staged.yaw)
        boxes.append(box)
        classes.append(int(label))
        palette = CLOTHING_COLORS if label == ObjectClass.PEDESTRIAN else VEHICLE_PAINTS
        colors.append(draw_colors(rng, palette, 1))
    if not boxes:
        return BoxSet.empty(), np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.uint8)
    return BoxSet.concatenate(boxes), np.array(classes, dtype=np.int64), np.concatenate(colors)


def _clear_of(boxes: BoxSet, staged: BoxSet, margin: float) -> np.ndarray:
    """Which boxes keep at least `margin` from every staged footprint, boolean (K,)."""
    if len(boxes) == 0 or len(staged) == 0:
        return np.ones(len(boxes), dtype=bool)
    grown = BoxSet(staged.centers, staged.sizes + [2.0 * margin, 2.0 * margin, 0.0], staged.yaws)
    reach = 0.5 * np.linalg.norm(boxes.sizes[:, :2], axis=1)[:, None] + 0.5 * np.linalg.norm(grown.sizes[:, :2], axis=1)
    first, second = np.nonzero(np.linalg.norm(boxes.centers[:, None, :2] - grown.centers[None, :, :2], axis=2) < reach)
    overlap = rectangles_overlap(boxes.corners_bev()[first], grown.corners_bev()[second])
    clear = np.ones(len(boxes), dtype=bool)
    clear[first[overlap]] = False
    return clear


def generate_layout(scenario: Scenario, road: RoadGeometry, rng: np.random.Generator) -> StaticLayout:
    """The static world of `scenario` for one random draw; parked vehicles get ids 1..P and staged
    objects P+1..P+S. Parked vehicles and poles in the way of a staged object are left out."""
    scenery, scenery_materials, scenery_colors = _clutter(scenario.clutter, road, rng)
    parked, parked_classes = _parked(scenario.parked, road, rng)
    parked_colors = draw_colors(rng, VEHICLE_PAINTS, len(parked))
    staged, staged_classes, staged_colors = _staged(scenario, road, rng)
    if len(staged):  # drawn in full first, so that staging an object changes nothing else of the draw
        keep = _clear_of(parked, staged, STAGED_CLEARANCE)
        parked, parked_classes, parked_colors = parked.subset(keep), parked_classes[keep], parked_colors[keep]
        keep = (scenery_materials != Material.POLE) | _clear_of(scenery, staged, STAGED_CLEARANCE)
        scenery, scenery_materials, scenery_colors = scenery.subset(keep), scenery_materials[keep], scenery_colors[keep]
    targets = [index for index, staged_object in enumerate(scenario.staged) if staged_object.target]
    return StaticLayout(
        scenery=scenery, scenery_materials=scenery_materials, scenery_colors=scenery_colors,
        parked=parked, parked_ids=np.arange(1, len(parked) + 1, dtype=np.int64), parked_classes=parked_classes,
        parked_colors=parked_colors, staged=staged,
        staged_ids=np.arange(len(parked) + 1, len(parked) + len(staged) + 1, dtype=np.int64),
        staged_classes=staged_classes, staged_colors=staged_colors, target_index=targets[0] if targets else -1,
    )

