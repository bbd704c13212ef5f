"""A 3D Gaussian-splatting model of the static world and its standard .ply file.

Each Gaussian has a mean in map (metres), a linear standard deviation along each of its own three
axes (metres), a unit quaternion (w, x, y, z) rotating its axes into map, an opacity in (0, 1) and
an RGB colour in [0, 1] (spherical harmonics of degree 0: one colour seen from every side). The sky
is a flat background colour.

The .ply is the layout of Kerbl et al.'s 3DGS reference code (binary little-endian float32
properties x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3, opacity as a logit, scales as
logarithms, colours as the degree-0 coefficient f_dc = (rgb - 0.5) / SH_C0), so common 3DGS viewers
open it; the background rides along in a `comment background r g b` header line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical harmonic, 1 / (2 sqrt(pi)): rgb = 0.5 + SH_C0 * f_dc."""
PLY_PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
"""Vertex properties written, in order (all float32)."""
OPACITY_EPSILON = 1e-6
"""Opacities are kept this far inside (0, 1) so that their logits stay finite."""
DEFAULT_BACKGROUND = (150 / 255, 190 / 255, 235 / 255)
"""Sky colour when none is given: the simulated camera's sky."""
FIX_HINT = ("rebuild it with `build-gaussian-scene --scenario config/scenarios/<scenario>.yaml --seed <seed> "
            "--out <file>.ply`")
"""What to do about a missing or unreadable model file."""


class GaussianModelError(RuntimeError):
    """A Gaussian model file that cannot be used; the message names the file and the fix."""


@dataclass
class GaussianModel:
    """N anisotropic 3D Gaussians in map; see the module docstring for the conventions."""

    means: np.ndarray
    """Centres in map, metres, float32 (N, 3)."""
    scales: np.ndarray
    """Standard deviations along the Gaussian's own axes, metres, float32 (N, 3)."""
    rotations: np.ndarray
    """Unit quaternions (w, x, y, z) taking the Gaussian's axes to map, float32 (N, 4)."""
    opacities: np.ndarray
    """Peak opacity, in (0, 1), float32 (N,)."""
    colors: np.ndarray
    """RGB in [0, 1], float32 (N, 3)."""
    background: tuple[float, float, float] = DEFAULT_BACKGROUND
    """Colour of pixels that no Gaussian covers (the sky), RGB in [0, 1]."""

    def __post_init__(self) -> None:
        count = len(self.means)
        expected = {"means": (count, 3), "scales": (count, 3), "rotations": (count, 4), "opacities": (count,),
                    "colors": (count, 3)}
        for name, shape in expected.items():
            value = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"{name}: must have shape {shape}, got {value.shape}")
            setattr(self, name, value)
        self.background = tuple(float(channel) for channel in self.background)
        if len(self.background) != 3 or not all(0.0 <= channel <= 1.0 for channel in self.background):
            raise ValueError(f"background: must be three values in [0, 1], got {self.background}")

    def __len__(self) -> int:
        return len(self.means)

    def subset(self, selection: np.ndarray) -> GaussianModel:
        """The Gaussians picked by a boolean mask or an index array, same background."""
        return GaussianModel(self.means[selection], self.scales[selection], self.rotations[selection],
                             self.opacities[selection], self.colors[selection], self.background)

    @staticmethod
    def concatenate(models: list[GaussianModel]) -> GaussianModel:
        """All Gaussians of `models` (at least one) in order, with the first one's background."""
        if not models:
            raise ValueError("models: need at least one model to concatenate")
        return GaussianModel(*(np.concatenate([getattr(model, name) for model in models])
                               for name in ("means", "scales", "rotations", "opacities", "colors")),
                             background=models[0].background)

    def save_ply(self, path: str | Path) -> None:
        """Write the standard 3DGS .ply (see the module docstring); parent folders are created."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        opacities = np.clip(self.opacities, OPACITY_EPSILON, 1.0 - OPACITY_EPSILON)
        columns = np.concatenate([
            self.means, np.zeros_like(self.means), (self.colors - 0.5) / SH_C0,
            np.log(opacities / (1.0 - opacities))[:, None], np.log(np.maximum(self.scales, 1e-12)),
            self.rotations], axis=1).astype("<f4")
        header = "\n".join([
            "ply", "format binary_little_endian 1.0",
            "comment background " + " ".join(f"{channel:.9g}" for channel in self.background),
            f"element vertex {len(self)}", *(f"property float {name}" for name in PLY_PROPERTIES), "end_header", ""])
        with path.open("wb") as file:
            file.write(header.encode("ascii"))
            file.write(columns.tobytes())

    @staticmethod
    def load_ply(path: str | Path) -> GaussianModel:
        """Read a .ply written by save_ply or by 3DGS tools (float32 properties in any order; higher
        spherical-harmonic bands are ignored). GaussianModelError for a missing or corrupt file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise GaussianModelError(f"{path}: cannot read the Gaussian model ({error.strerror}); {FIX_HINT}") from None
        end = data.find(b"end_header\n")
        if not data.startswith(b"ply\n") or end < 0:
            raise GaussianModelError(f"{path}: not a .ply file (no 'ply' ... 'end_header' header); {FIX_HINT}")
        count, properties, background = _parse_header(path, data[:end].decode("ascii", errors="replace"))
        body = data[end + len(b"end_header\n"):]
        record = np.dtype([(name, "<f4") for name in properties])
        if len(body) < count * record.itemsize:
            raise GaussianModelError(f"{path}: truncated: the header announces {count} Gaussians "
                                     f"({count * record.itemsize} bytes) but {len(body)} bytes follow; {FIX_HINT}")
        table = np.frombuffer(body, dtype=record, count=count)
        values = {name: table[name].astype(np.float32) for name in PLY_PROPERTIES if name in properties}
        if not all(np.all(np.isfinite(column)) for column in values.values()):
            raise GaussianModelError(f"{path}: corrupt: non-finite values in the Gaussians; {FIX_HINT}")
        rotations = np.stack([values[f"rot_{index}"] for index in range(4)], axis=1)
        norms = np.linalg.norm(rotations, axis=1, keepdims=True)
        if np.any(norms < 1e-12):
            raise GaussianModelError(f"{path}: corrupt: zero-length rotation quaternions; {FIX_HINT}")
        return GaussianModel(
            means=np.stack([values["x"], values["y"], values["z"]], axis=1),
            scales=np.exp(np.stack([values[f"scale_{index}"] for index in range(3)], axis=1)),
            rotations=rotations / norms,
            opacities=1.0 / (1.0 + np.exp(-values["opacity"])),
            colors=np.clip(0.5 + SH_C0 * np.stack([values[f"f_dc_{index}"] for index in range(3)], axis=1), 0.0, 1.0),
            background=background)


def _parse_header(path: Path, header: str) -> tuple[int, list[str], tuple[float, float, float]]:
    """(vertex count, vertex property names in file order, background) of a 3DGS .ply header."""
    count, properties, background, in_vertex = None, [], DEFAULT_BACKGROUND, False
    for line in header.splitlines()[1:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "format" and words[1:2] != ["binary_little_endian"]:
            raise GaussianModelError(f"{path}: unsupported .ply format {' '.join(words[1:])!r} "
                                     f"(need binary_little_endian); {FIX_HINT}")
        if words[:2] == ["comment", "background"]:
            try:
                background = tuple(float(word) for word in words[2:5])
            except ValueError:
                raise GaussianModelError(f"{path}: corrupt background comment {line!r}; {FIX_HINT}") from None
        elif words[0] == "element":
            in_vertex = words[1:2] == ["vertex"]
            if in_vertex:
                count = int(words[2]) if len(words) == 3 and words[2].isdigit() else None
            elif count is not None:
                raise GaussianModelError(f"{path}: unsupported .ply: elements after 'vertex'; {FIX_HINT}")
        elif words[0] == "property" and in_vertex:
            if words[1] != "float" or len(words) != 3:
                raise GaussianModelError(f"{path}: unsupported vertex property {line!r} (need float32); {FIX_HINT}")
            properties.append(words[2])
    missing = [name for name in PLY_PROPERTIES[:3] + PLY_PROPERTIES[6:] if name not in properties]
    if count is None or missing:
        what = "no vertex count" if count is None else f"missing properties {', '.join(missing)}"
        raise GaussianModelError(f"{path}: not a 3D Gaussian-splatting .ply ({what}); {FIX_HINT}")
    return count, properties, background

