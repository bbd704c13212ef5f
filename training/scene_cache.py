"""Gaussian-splatting scenes of simulated worlds, built once and kept: the main job, the bringup and
the GSRMR evaluation need the scene of the world they run, and building one takes a while."""
from __future__ import annotations

import hashlib
from pathlib import Path

from training.gaussian_scene import EPISODE_SECONDS, SceneConfig, build_scene

SCENE_CACHE = Path("out/gaussian_scenes")
"""Where built scenes are kept (relative: from the working directory)."""


def cached_scene(scenario_path: str | Path, seed: int, duration: float = EPISODE_SECONDS,
                 cache: Path = SCENE_CACHE, progress: bool = True) -> Path:
    """The .ply of the scenario's static world for `seed`, covering what an episode of `duration`
    seconds can see; built with build_scene's defaults on first use. The file name carries a digest
    of the scenario file, the seed, the duration and the build settings, so a change to any of them
    builds a new scene."""
    scenario_path = Path(scenario_path)
    key = f"{scenario_path.read_text()}|{seed}|{duration:g}|{SceneConfig()!r}"
    path = Path(cache) / f"{scenario_path.stem}_seed{seed}_{hashlib.sha256(key.encode()).hexdigest()[:12]}.ply"
    if not path.is_file():
        if progress:
            print(f"building the Gaussian-splatting scene of {scenario_path.stem}, seed {seed} (kept in {path})")
        model = build_scene(scenario_path, seed, duration=duration, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.ply")
        model.save_ply(partial)
        partial.rename(path)  # a run stopped while writing leaves no half file under the real name
    return path
