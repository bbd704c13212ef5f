"""KITTI 3D object data: velodyne scans, label_2 labels, calibration, and mmdetection3d's info
JSON, with the labelled boxes moved into the velodyne (sensor) frame as perception Box3D.

KITTI labels live in the rectified frame of the left colour camera (x right, y down, z forward):
`location` is the box's bottom centre, `dimensions` are height, width, length, and `rotation_y`
turns the box about the camera's y axis (0: the length runs along camera +x). A point goes from the
velodyne to that frame as R0_rect @ Tr_velo_to_cam @ p. Into the velodyne frame a box becomes
centre = inverse(R0_rect @ Tr_velo_to_cam) @ location + (0, 0, h/2), size = (l, w, h) and
yaw = -rotation_y - pi/2, the convention of OpenPCDet and mmdetection3d (it ignores the
calibration's tilt of a fraction of a degree between the two frames' vertical axes).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.objects import Box3D, ObjectClass, points_in_box_mask

KITTI_LABELS: dict[str, ObjectClass | None] = {
    "Car": ObjectClass.CAR,
    "Van": ObjectClass.VAN,
    "Truck": ObjectClass.TRUCK,
    "Pedestrian": ObjectClass.PEDESTRIAN,
    "Person_sitting": ObjectClass.PEDESTRIAN,
    "Cyclist": ObjectClass.CYCLIST,
    "Tram": None,
    "Misc": None,
    "DontCare": None,
}
"""KITTI object type -> the label it is evaluated as; None: listed but not evaluated."""

MMDET3D_KITTI_CLASSES = ("Pedestrian", "Cyclist", "Car", "Van", "Truck", "Person_sitting", "Tram", "Misc")
"""KITTI type of each `bbox_label_3d` index in mmdetection3d's v2 info files; -1 is DontCare."""

LABELLED_FRAMES = ("000000", "000001", "000002", "000008")
"""Frames of data/kitti with 3D labels (000008 through mmdetection3d's info JSON)."""

LABEL_FIELDS = 15
"""Fields of a label_2 line; result files add a 16th, the score."""


class KittiFormatError(ValueError):
    """A KITTI file that cannot be read; the text names the file (and line) and what is wrong."""


@dataclass
class KittiCalibration:
    """The matrices of a calib/*.txt file that place the velodyne relative to the cameras."""

    p2: np.ndarray
    """(3, 4) projection of the rectified frame into the left colour image, pixels."""
    r0_rect: np.ndarray
    """(3, 3) rotation from the reference camera frame to the rectified frame."""
    tr_velo_to_cam: np.ndarray
    """(3, 4) rigid transform from the velodyne frame to the reference camera frame, metres."""

    @property
    def velo_to_rect(self) -> np.ndarray:
        """(4, 4) homogeneous transform velodyne -> rectified camera frame."""
        rectify, velo_to_cam = np.eye(4), np.eye(4)
        rectify[:3, :3], velo_to_cam[:3, :] = self.r0_rect, self.tr_velo_to_cam
        return rectify @ velo_to_cam

    def rect_to_velo(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) of the rectified camera frame in the velodyne frame, (N, 3)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
        return np.linalg.solve(self.velo_to_rect, homogeneous.T).T[:, :3]


@dataclass
class KittiObject:
    """One labelled object (any KITTI type, DontCare too), its box in the velodyne frame."""

    kitti_type: str
    """The label's type string: Car, Van, Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc or DontCare."""
    label: ObjectClass | None
    """What it is evaluated as (KITTI_LABELS); None: not evaluated."""
    box: Box3D | None
    """Box in the velodyne frame (centre z is the box centre); None for DontCare, which marks only
    an image region."""
    truncated: float
    """Fraction of the object outside the image, 0..1 (-1 for DontCare)."""
    occluded: int
    """0 fully visible, 1 partly occluded, 2 largely occluded, 3 unknown (-1 for DontCare)."""
    alpha: float
    """Observation angle in the image, radians."""
    bbox_2d: np.ndarray
    """Image rectangle (left, top, right, bottom), pixels, shape (4,)."""
    num_lidar_points: int = 0
    """Scan points inside the box, counted by `count_points_in_boxes`; 0 without a box."""
    reference_num_points: int | None = None
    """Points in the box as the source file gives them (mmdetection3d's num_lidar_pts), or None."""

    @property
    def evaluated(self) -> bool:
        """True for the types a detector is scored on."""
        return self.label is not None

    @property
    def distance(self) -> float:
        """Ground-plane distance of the box centre from the sensor, metres; NaN without a box."""
        return math.nan if self.box is None else float(np.hypot(self.box.center[0], self.box.center[1]))


@dataclass
class KittiFrame:
    """One scan with its labels."""

    frame_id: str
    """KITTI frame number, six digits."""
    points: np.ndarray
    """(N, 4) float32 x, y, z, reflectance in the velodyne frame."""
    objects: list[KittiObject]
    """Every labelled object in file order."""
    calibration: KittiCalibration
    """The frame's calibration."""
    sources: tuple[Path, ...]
    """The files read (scan, labels, calibration)."""


def camera_box_to_lidar(location: np.ndarray, height: float, width: float, length: float, rotation_y: float,
                        calibration: KittiCalibration) -> Box3D:
    """A KITTI camera box (bottom centre in the rectified frame, rotation_y) as a velodyne-frame Box3D."""
    bottom = calibration.rect_to_velo(location)[0]
    yaw = -rotation_y - math.pi / 2.0
    return Box3D(center=bottom + np.array([0.0, 0.0, height / 2.0]), size=(length, width, height),
                 yaw=math.atan2(math.sin(yaw), math.cos(yaw)))


def read_velodyne(path: Path) -> np.ndarray:
    """A KITTI .bin scan: float32 little-endian x, y, z, reflectance rows, as (N, 4) float32."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) % 16:
        raise KittiFormatError(f"{path}: {len(raw)} bytes is not a whole number of 16-byte points "
                               "(float32 x, y, z, reflectance)")
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 4).astype(np.float32)


def _matrix(path: Path, values: dict[str, np.ndarray], key: str, shape: tuple[int, int]) -> np.ndarray:
    if key not in values:
        raise KittiFormatError(f"{path}: no {key} entry (found {', '.join(values) or 'none'})")
    if values[key].size != shape[0] * shape[1]:
        raise KittiFormatError(f"{path}: {key} has {values[key].size} numbers, expected {shape[0] * shape[1]}")
    return values[key].reshape(shape)


def read_calibration(path: Path) -> KittiCalibration:
    """A calib/*.txt file ("KEY: numbers" lines)."""
    path = Path(path)
    values: dict[str, np.ndarray] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, separator, numbers = line.partition(":")
        try:
            if not separator:
                raise ValueError("no ':' after the key")
            values[key.strip()] = np.array([float(number) for number in numbers.split()])
        except ValueError as error:
            raise KittiFormatError(f"{path}:{line_number}: not a 'KEY: numbers' line ({error}): {line!r}") from None
    return KittiCalibration(p2=_matrix(path, values, "P2", (3, 4)), r0_rect=_matrix(path, values, "R0_rect", (3, 3)),
                            tr_velo_to_cam=_matrix(path, values, "Tr_velo_to_cam", (3, 4)))


def parse_label_line(line: str, calibration: KittiCalibration) -> KittiObject:
    """One label_2 line: type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]."""
    fields = line.split()
    if len(fields) not in (LABEL_FIELDS, LABEL_FIELDS + 1):
        raise ValueError(f"expected {LABEL_FIELDS} fields (or {LABEL_FIELDS + 1} with a score), got {len(fields)}")
    kitti_type = fields[0]
    if kitti_type not in KITTI_LABELS:
        raise ValueError(f"unknown object type {kitti_type!r}; known: {', '.join(KITTI_LABELS)}")
    try:
        numbers = [float(value) for value in fields[1:LABEL_FIELDS]]
    except ValueError as error:
        raise ValueError(f"a numeric field is not a number ({error})") from None
    truncated, occluded, alpha = numbers[0], numbers[1], numbers[2]
    if occluded != int(occluded):
        raise ValueError(f"occluded must be an integer, got {fields[2]!r}")
    height, width, length = numbers[7:10]
    location, rotation_y = np.array(numbers[10:13]), numbers[13]
    box = None
    if kitti_type != "DontCare":
        if min(height, width, length) <= 0.0:
            raise ValueError(f"dimensions (h, w, l) must be positive, got ({height:g}, {width:g}, {length:g})")
        box = camera_box_to_lidar(location, height, width, length, rotation_y, calibration)
    return KittiObject(kitti_type=kitti_type, label=KITTI_LABELS[kitti_type], box=box, truncated=truncated,
                       occluded=int(occluded), alpha=alpha, bbox_2d=np.array(numbers[3:7]))


def read_labels(path: Path, calibration: KittiCalibration) -> list[KittiObject]:
    """Every object of a label_2 file, boxes in the velodyne frame of `calibration`."""
    path = Path(path)
    objects = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objects.append(parse_label_line(line, calibration))
        except ValueError as error:
            raise KittiFormatError(f"{path}:{line_number}: {error}: {line!r}") from None
    return objects


def _mmdet3d_object(instance: dict, calibration: KittiCalibration) -> KittiObject:
    index = int(instance["bbox_label_3d"])
    if not -1 <= index < len(MMDET3D_KITTI_CLASSES):
        raise ValueError(f"bbox_label_3d {index} is not a KITTI class index (-1..{len(MMDET3D_KITTI_CLASSES) - 1})")
    kitti_type = "DontCare" if index == -1 else MMDET3D_KITTI_CLASSES[index]
    x, y, z, length, height, width, rotation_y = (float(value) for value in instance["bbox_3d"])
    box = None if index == -1 else camera_box_to_lidar(np.array([x, y, z]), height, width, length, rotation_y,
                                                       calibration)
    reference = int(instance["num_lidar_pts"])
    return KittiObject(kitti_type=kitti_type, label=KITTI_LABELS[kitti_type], box=box,
                       truncated=float(instance["truncated"]), occluded=int(instance["occluded"]),
                       alpha=float(instance["alpha"]), bbox_2d=np.array(instance["bbox"], dtype=np.float64),
                       reference_num_points=None if reference < 0 else reference)


def read_mmdet3d_info(path: Path) -> tuple[KittiCalibration, list[KittiObject]]:
    """Calibration and objects of the one frame in an mmdetection3d v2 KITTI info JSON (a dump of
    its .pkl): `bbox_3d` = [x, y, z, l, h, w, rotation_y] in the rectified camera frame, bottom centre."""
    path = Path(path)
    try:
        info = json.loads(path.read_text())
        frames = info["data_list"]
        if len(frames) != 1:
            raise ValueError(f"expected one frame in data_list, got {len(frames)}")
        frame = frames[0]
        calibration = KittiCalibration(p2=np.array(frame["images"]["CAM2"]["cam2img"], dtype=np.float64)[:3, :4],
                                       r0_rect=np.array(frame["images"]["R0_rect"], dtype=np.float64)[:3, :3],
                                       tr_velo_to_cam=np.array(frame["lidar_points"]["Tr_velo_to_cam"],
                                                               dtype=np.float64)[:3, :4])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise KittiFormatError(f"{path}: not an mmdetection3d KITTI info file "
                               f"({type(error).__name__}: {error})") from None
    objects = []
    for number, instance in enumerate(frame.get("instances", [])):
        try:
            objects.append(_mmdet3d_object(instance, calibration))
        except (KeyError, TypeError, ValueError) as error:
            raise KittiFormatError(f"{path}: instance {number}: {type(error).__name__}: {error}") from None
    return calibration, objects


def count_points_in_boxes(points: np.ndarray, objects: list[KittiObject]) -> None:
    """Set each object's num_lidar_points to the scan points inside its box (no margin)."""
    for kitti_object in objects:
        if kitti_object.box is not None:
            kitti_object.num_lidar_points = int(points_in_box_mask(points, kitti_object.box.as_array(), margin=0.0).sum())


def load_labelled_frame(root: Path, frame_id: str) -> KittiFrame:
    """A labelled frame of data/kitti: kitti_training/{velodyne,label_2,calib}/<id>.* or, for frames
    that mmdetection3d ships, kitti_<id>/<id>.bin with <id>.derived.json."""
    root = Path(root)
    label_path = root / "kitti_training" / "label_2" / f"{frame_id}.txt"
    info_path = root / f"kitti_{frame_id}" / f"{frame_id}.derived.json"
    if label_path.is_file():
        scan_path = root / "kitti_training" / "velodyne" / f"{frame_id}.bin"
        calibration_path = root / "kitti_training" / "calib" / f"{frame_id}.txt"
        calibration = read_calibration(calibration_path)
        objects = read_labels(label_path, calibration)
        sources = (scan_path, label_path, calibration_path)
    elif info_path.is_file():
        scan_path = info_path.with_name(f"{frame_id}.bin")
        calibration, objects = read_mmdet3d_info(info_path)
        sources = (scan_path, info_path)
    else:
        raise FileNotFoundError(f"KITTI frame {frame_id}: neither {label_path} nor {info_path} exists")
    points = read_velodyne(scan_path)
    count_points_in_boxes(points, objects)
    return KittiFrame(frame_id=frame_id, points=points, objects=objects, calibration=calibration, sources=sources)


def unlabelled_scan_paths(root: Path) -> list[Path]:
    """The camera-view-cropped scans of kitti_velodyne_reduced_unlabeled, in frame order."""
    paths = sorted((Path(root) / "kitti_velodyne_reduced_unlabeled").glob("*.bin"))
    if not paths:
        raise FileNotFoundError(f"no .bin scans under {Path(root) / 'kitti_velodyne_reduced_unlabeled'}")
    return paths
