"""Fitting a built model to the survey's images improves it on views it was not fitted to."""
import numpy as np
import pytest

from mixed_reality.build import BuildConfig, gaussians_from_rgbd
from mixed_reality.fit import FitConfig, fit_to_images, views_psnr
from mixed_reality.gaussians import GaussianModel
from mixed_reality.render import GaussianRenderer
from sim.scenario import load_scenario
from sim.survey import SurveyConfig, SurveyFrames, survey_frames
from sim.world import World

SURVEY = SurveyConfig(spacing=8.0, width=160, height=120)


@pytest.fixture(scope="module")
def scene():
    world = World(load_scenario("config/scenarios/urban_default.yaml"), seed=0)
    frames = survey_frames(world, (40.0, 72.0), SURVEY)
    model = gaussians_from_rgbd(frames, BuildConfig(voxel_size=0.2, max_voxel_size=0.8))
    # Held out: between the stations, off the lane centres, turned differently.
    held_out = SurveyFrames(world, [(44.0 + 8.0 * index, -4.6 - 0.5 * index, 0.1 * (-1) ** index) for index in range(4)],
                            frames.camera)
    return model, frames, held_out


def test_fitting_improves_held_out_views(scene):
    # The built model with its colours and opacities spoiled (as by a survey in bad light): fitting to
    # the survey's images must bring back what views between the survey's poses see.
    model, frames, held_out = scene
    rng = np.random.default_rng(0)
    spoiled = GaussianModel(model.means, model.scales, model.rotations,
                            np.clip(model.opacities * rng.uniform(0.5, 1.0, len(model)), 0.05, 0.99),
                            np.clip(model.colors + rng.normal(0.0, 0.3, model.colors.shape), 0.0, 1.0),
                            model.background)
    fitted, history = fit_to_images(spoiled, frames, FitConfig(steps=40, max_distance=40.0, seed=1), progress=False)
    before, after = views_psnr(GaussianRenderer(spoiled), held_out), views_psnr(GaussianRenderer(fitted), held_out)
    assert after > before + 1.0, (before, after)
    assert len(history.losses) == 40 and len(history.views) == 40
    assert np.mean(history.losses[-10:]) < np.mean(history.losses[:10])
    assert len(fitted) == len(model) - history.pruned
    assert fitted.background == model.background and history.seconds > 0.0


def test_colours_only_fit_keeps_the_geometry(scene):
    model, frames, _ = scene
    fitted, history = fit_to_images(model, frames, FitConfig(steps=3, geometry=False, prune_opacity=0.0),
                                    progress=False)
    assert history.pruned == 0
    np.testing.assert_array_equal(fitted.means, model.means)
    np.testing.assert_allclose(fitted.scales, model.scales, rtol=1e-6)
    assert not np.array_equal(fitted.colors, model.colors)


def test_fit_needs_frames(scene):
    with pytest.raises(ValueError, match="at least one"):
        fit_to_images(scene[0], [], FitConfig(steps=1), progress=False)
