"""The robot's cheap prediction of the remote render's quality (mixed_reality.discrepancy)."""
import numpy as np
import pytest

from mixed_reality.build import BuildConfig, gaussians_from_rgbd
from mixed_reality.discrepancy import CalibrationSample, DiscrepancyConfig, DiscrepancyPredictor
from mixed_reality.quality import psnr, ssim
from mixed_reality.render import GaussianRenderer
from mixed_reality.stream import downscale, scaled_intrinsics
from sim.scenario import load_scenario
from sim.survey import SurveyConfig, survey_frames
from sim.transforms import planar_pose_matrix
from sim.world import World

POSE = (52.0, -5.25, 0.05)


@pytest.fixture(scope="module")
def setting():
    world = World(load_scenario("config/scenarios/urban_default.yaml"), seed=0)
    frames = survey_frames(world, (40.0, 90.0), SurveyConfig(spacing=8.0, width=160, height=120))
    renderer = GaussianRenderer(gaussians_from_rgbd(frames, BuildConfig(voxel_size=0.2, max_voxel_size=0.8)))
    stream = downscale(world.static_camera_frame(POSE).rgb, 2)  # 320 x 240, as the GSRMR stream
    camera_to_map = planar_pose_matrix(*POSE) @ world.camera_config.optical_to_base_link()
    return renderer, stream, camera_to_map, scaled_intrinsics(world.camera_intrinsics, 2)


def test_measure_compares_a_small_render_with_the_frame_averaged_down(setting):
    renderer, stream, camera_to_map, intrinsics = setting
    predictor = DiscrepancyPredictor(renderer)
    low_psnr, low_ssim = predictor.measure(stream, camera_to_map, intrinsics)
    small = renderer.render(camera_to_map, scaled_intrinsics(intrinsics, 4), 80, 60).rgb
    assert low_psnr == pytest.approx(psnr(small, downscale(stream, 4)))
    assert low_ssim == pytest.approx(ssim(small, downscale(stream, 4)))
    assert 15.0 < low_psnr < 40.0 and 0.3 < low_ssim < 1.0


def test_something_the_model_lacks_lowers_the_prediction_as_it_lowers_the_truth(setting):
    renderer, stream, camera_to_map, intrinsics = setting
    predictor = DiscrepancyPredictor(renderer)
    # A "vehicle" the static model does not hold: a dark red block in the middle of the road.
    with_vehicle = stream.copy()
    with_vehicle[120:190, 110:230] = (120, 20, 20)
    full = renderer.render(camera_to_map, intrinsics, 320, 240).rgb
    clear, blocked = predictor.predict(stream, camera_to_map, intrinsics), predictor.predict(with_vehicle, camera_to_map,
                                                                                               intrinsics)
    assert psnr(full, with_vehicle) < psnr(full, stream) - 2.0
    assert blocked[0] < clear[0] - 2.0 and blocked[1] < clear[1]


def test_calibration_fits_the_lines_and_prediction_applies_them(setting):
    renderer, stream, camera_to_map, intrinsics = setting
    predictor = DiscrepancyPredictor(renderer)
    samples = [CalibrationSample(low, 0.5 + 0.01 * low, 0.8 * low + 3.0, 1.2 * (0.5 + 0.01 * low) - 0.3)
               for low in (18.0, 22.0, 25.0, 31.0)]
    config = predictor.calibrate(samples)
    assert (config.psnr_slope, config.psnr_intercept) == pytest.approx((0.8, 3.0))
    assert (config.ssim_slope, config.ssim_intercept) == pytest.approx((1.2, -0.3))
    assert predictor.config is config and (config.width, config.height) == (80, 60)
    low_psnr, low_ssim = predictor.measure(stream, camera_to_map, intrinsics)
    predicted = predictor.predict(stream, camera_to_map, intrinsics)
    assert predicted[0] == pytest.approx(0.8 * low_psnr + 3.0)
    assert predicted[1] == pytest.approx(min(1.0, 1.2 * low_ssim - 0.3))
    # Identical low-resolution values: a slope of 1 through the mean offset.
    flat = predictor.calibrate([CalibrationSample(20.0, 0.7, 22.0, 0.8), CalibrationSample(20.0, 0.7, 24.0, 0.9)])
    assert (flat.psnr_slope, flat.psnr_intercept) == pytest.approx((1.0, 3.0))
    with pytest.raises(ValueError, match="at least 2"):
        predictor.calibrate(samples[:1])


def test_frames_must_be_a_whole_multiple_of_the_small_render(setting):
    renderer, stream, camera_to_map, intrinsics = setting
    predictor = DiscrepancyPredictor(renderer, DiscrepancyConfig(width=96, height=72))
    with pytest.raises(ValueError, match="whole multiple"):
        predictor.predict(stream, camera_to_map, intrinsics)
    with pytest.raises(ValueError, match="width"):
        DiscrepancyConfig(width=4)
    assert np.isfinite(DiscrepancyPredictor(renderer, DiscrepancyConfig(width=160, height=120)).predict(
        stream, camera_to_map, intrinsics)[0])
