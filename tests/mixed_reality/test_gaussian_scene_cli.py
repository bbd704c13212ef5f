"""build-gaussian-scene: the drive's default range, build_scene, the command line and its figure."""
import dataclasses

import numpy as np
import pytest

from mixed_reality.build import BuildConfig
from mixed_reality.gaussians import GaussianModel
from sim.scenario import load_scenario
from sim.survey import SurveyConfig
from training.gaussian_scene import SceneConfig, build_scene, comparison_figure, default_s_range, main

SCENARIO = "config/scenarios/urban_default.yaml"


def test_default_range_covers_the_episode_drive_and_the_view_ahead():
    scenario = load_scenario(SCENARIO)  # ego lane 1 (drives +s) from s = 30, top speed 20 m/s
    assert default_s_range(scenario, duration=20.0, view_range=200.0) == pytest.approx((20.0, 630.0))
    assert default_s_range(scenario, duration=100.0, view_range=200.0) == pytest.approx((20.0, 1500.0))
    oncoming = dataclasses.replace(scenario, ego=dataclasses.replace(scenario.ego, lane=4, start_s=1000.0))
    assert default_s_range(oncoming, duration=10.0, view_range=100.0) == pytest.approx((700.0, 1010.0))


def test_build_scene_models_the_surveyed_stretch():
    config = SceneConfig(survey=SurveyConfig(width=160, height=120), build=BuildConfig(voxel_size=0.2))
    model = build_scene(SCENARIO, seed=0, s_range=(60.0, 76.0), config=config, progress=False)
    assert len(model) > 1000
    assert model.means[:, 0].min() > 55.0 and np.percentile(model.means[:, 0], 5) > 60.0
    # Ahead at most the camera mount plus max_depth (optical z) at the image corner, 45 degrees off axis.
    assert model.means[:, 0].max() < 76.0 + 1.5 + 60.0 * np.sqrt(2.0) + 1.0
    assert model.background == pytest.approx((150 / 255, 190 / 255, 235 / 255))


def test_command_line_writes_a_loadable_scene_and_a_figure(tmp_path, capsys):
    out, figure = tmp_path / "scene.ply", tmp_path / "renders.png"
    assert main(["--scenario", SCENARIO, "--seed", "1", "--out", str(out), "--s-range", "40", "48"]) == 0
    model = GaussianModel.load_ply(out)
    assert len(model) > 1000
    assert f"{len(model):,} Gaussians" in capsys.readouterr().out
    scores = comparison_figure(model, SCENARIO, 1, figure, rows=2, drive_seconds=1.0)
    assert figure.is_file() and figure.stat().st_size < 1_000_000
    assert len(scores) == 2 and scores[0][2] == 0  # the first row is the static world
    assert all(0.0 < score[0] < 60.0 and -1.0 < score[1] <= 1.0 for score in scores)


def test_command_line_refuses_a_missing_scenario(tmp_path, capsys):
    assert main(["--scenario", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "scene.ply")]) == 2
    assert "cannot read scenario file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--scenario", SCENARIO, "--out", str(tmp_path / "scene.ply"), "--duration", "-3"])
