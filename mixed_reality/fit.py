"""Fitting a Gaussian model to posed images with the differentiable renderer (the 3DGS optimisation).

Each step renders one training view (drawn at random) with GaussianRenderer.render_tensor and
takes an Adam step on the L1 distance to the image, over the pixels whose depth is within
max_distance or that see the sky (nearer content is what the fitted render draws; farther pixels
are left to views closer to them). Colours and opacities are always optimised; with
`geometry` also the means, scales and rotations, as in 3DGS (which sharpens edges: Gaussians that
straddle one shrink). Learning rates decay exponentially to `final_rate` of their start. Gaussians
whose opacity ends below `prune_opacity` are dropped.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from mixed_reality.build import PosedRGBD
from mixed_reality.gaussians import GaussianModel
from mixed_reality.quality import psnr
from mixed_reality.render import GaussianParameters, GaussianRenderer, RenderConfig
from sim.validation import check_ranges


@dataclass
class FitConfig:
    """Optimisation settings (learning rates per step of Adam, in the parameterisation of
    render.GaussianParameters: logits, log scales)."""

    steps: int = field(default=300, metadata={"range": (0, 1000000)})
    """Optimisation steps, one training view each."""
    color_rate: float = field(default=0.01, metadata={"range": (0.0, 1.0)})
    """Learning rate of the colours (RGB in [0, 1])."""
    opacity_rate: float = field(default=0.05, metadata={"range": (0.0, 10.0)})
    """Learning rate of the opacity logits (3DGS: 0.05)."""
    geometry: bool = True
    """Also optimise means, scales and rotations."""
    mean_rate: float = field(default=0.002, metadata={"range": (0.0, 10.0)})
    """Learning rate of the means, metres; keep it small: the renderer culls by where the means started."""
    scale_rate: float = field(default=0.01, metadata={"range": (0.0, 10.0)})
    """Learning rate of the log scales (3DGS: 0.005)."""
    rotation_rate: float = field(default=0.002, metadata={"range": (0.0, 10.0)})
    """Learning rate of the quaternions (3DGS: 0.001)."""
    final_rate: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    """Every learning rate decays exponentially to this share of its start over the steps."""
    max_distance: float = field(default=60.0, metadata={"range": (1.0, 100000.0)})
    """Training renders draw Gaussians up to this depth, metres; the loss counts the pixels up to it and the sky."""
    prune_opacity: float = field(default=0.02, metadata={"range": (0.0, 1.0)})
    """Gaussians whose fitted opacity is below this are dropped."""
    seed: int = 0
    """Seed of the order of the training views."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class FitHistory:
    """What the optimisation did."""

    losses: list[float] = field(default_factory=list)
    """L1 loss (RGB in [0, 1], over the counted pixels) of each step's view."""
    views: list[int] = field(default_factory=list)
    """Index of each step's training view."""
    pruned: int = 0
    """Gaussians dropped for their opacity at the end."""
    seconds: float = 0.0
    """Wall time of the optimisation, s."""


def fit_to_images(model: GaussianModel, frames: Sequence[PosedRGBD], config: FitConfig = FitConfig(),
                  progress: bool = True, render_config: RenderConfig = RenderConfig()) -> tuple[GaussianModel, FitHistory]:
    """The model fitted to `frames` (posed images with depth; see the module docstring) and the history."""
    if not frames:
        raise ValueError("frames: need at least one training view")
    renderer = GaussianRenderer(model, dataclasses.replace(render_config, max_distance=config.max_distance))
    parameters = GaussianParameters.from_model(model, renderer.device)
    groups = [{"params": [parameters.colors], "lr": config.color_rate},
              {"params": [parameters.opacity_logits], "lr": config.opacity_rate}]
    if config.geometry:
        groups += [{"params": [parameters.means], "lr": config.mean_rate},
                   {"params": [parameters.log_scales], "lr": config.scale_rate},
                   {"params": [parameters.rotations], "lr": config.rotation_rate}]
    for group in groups:
        group["params"][0].requires_grad_(True)
    optimizer = torch.optim.Adam(groups, eps=1e-15)
    decay = config.final_rate ** (1.0 / max(config.steps, 1)) if config.final_rate > 0 else 0.0
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
    order = np.random.default_rng(config.seed).integers(0, len(frames), config.steps)
    history = FitHistory()
    start = time.perf_counter()
    for view in tqdm(order, desc="fitting Gaussians", unit="step", disable=not progress):
        frame = frames[view]
        image, counted = _target(frame, config.max_distance, renderer.device)
        rendered = renderer.render_tensor(frame.camera_to_map, frame.intrinsics, image.shape[1], image.shape[0],
                                          parameters).rgb
        loss = ((rendered - image).abs().sum(dim=2) * counted).sum() / (3.0 * counted.sum().clamp_min(1.0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        history.losses.append(loss.item())
        history.views.append(int(view))
    history.seconds = time.perf_counter() - start
    fitted = parameters.to_model(model.background)
    keep = fitted.opacities >= config.prune_opacity
    history.pruned = int((~keep).sum())
    return fitted.subset(keep), history


def _target(frame: PosedRGBD, max_distance: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(image in [0, 1] (H, W, 3), 1 where the loss counts the pixel (H, W)) of a training view."""
    image = torch.as_tensor(np.asarray(frame.rgb), dtype=torch.float32, device=device) / 255.0
    depth = np.asarray(frame.depth)
    counted = (depth <= max_distance) | np.isinf(depth)
    return image, torch.as_tensor(counted, dtype=torch.float32, device=device)


def views_psnr(renderer: GaussianRenderer, frames: Sequence[PosedRGBD]) -> float:
    """Mean PSNR, dB, of the renderer's views against the frames' images (for held-out checks)."""
    scores = [psnr(renderer.render(frame.camera_to_map, frame.intrinsics, frame.rgb.shape[1], frame.rgb.shape[0]).rgb,
                   frame.rgb) for frame in frames]
    return float(np.mean(scores)) if scores else math.nan
