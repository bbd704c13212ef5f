"""The GSRMR evaluation on a short real drive: every frame scored, every method run on the same frames,
energies and qualities consistent with what each method is, the report and its plots written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.gsrmr_report import (GsrmrReportConfig, SWEPT_METHODS, markdown, plot_decisions,
                                     plot_energy_vs_threshold, predictor_accuracy, run_methods, summarise)
from evaluation.gsrmr_run import OFFLINE_METHODS, ONLINE, DriveConfig, record_drive
from mixed_reality.uplink.channel import Channel
from sim.scenario import load_scenario
from sim.world import World
from training.gaussian_scene import build_scene

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "urban_default.yaml"
CONFIG = DriveConfig(duration=1.0, window=5, quality_threshold=28.0)


@pytest.fixture(scope="module")
def drive():
    scene = build_scene(SCENARIO, 0, s_range=(20.0, 70.0), progress=False)
    return record_drive(World(load_scenario(SCENARIO), 0), "urban_default", scene, CONFIG, progress=False)


def test_every_frame_of_the_drive_is_coded_rendered_and_predicted(drive):
    assert len(drive) == 10
    assert np.all(np.diff(drive.stamps) > 0) and np.all(np.diff(drive.positions[:, 0]) > 0)  # driving +x
    assert np.all(drive.image_bits > 8 * 1000)
    assert np.all(drive.image_psnr > drive.render_psnr)  # a JPEG is closer to the frame than a render of the static world
    assert np.all((drive.render_ssim > 0.3) & (drive.render_ssim < 1.0))
    assert np.all(np.isfinite(drive.predicted_psnr)) and np.all((drive.dynamic_share >= 0) & (drive.dynamic_share < 1))


def test_the_methods_are_what_they_say_on_the_same_frames(drive, tmp_path):
    channel = Channel(CONFIG.channel)
    methods = OFFLINE_METHODS + (ONLINE,)
    runs = run_methods([drive], channel, CONFIG, CONFIG.quality_threshold, methods)
    summaries = {method: summarise(method_runs, [drive]) for method, method_runs in runs.items()}
    always, never = summaries["always_upload"], summaries["never_upload"]
    apo, exact = summaries["apo"], summaries["exact"]
    assert never.uploads_per_s == 0.0 and never.psnr == pytest.approx(drive.render_psnr.mean())
    assert always.psnr == max(summary.psnr for summary in summaries.values())
    assert never.energy_j == min(summary.energy_j for summary in summaries.values())
    # The exact solver is optimal for the instances both solve (predicted qualities), so APO is never cheaper.
    assert exact.energy_j <= apo.energy_j * (1 + 1e-9) and apo.energy_j < always.energy_j
    assert summaries["apo_max_power"].energy_j >= apo.energy_j
    assert np.array_equal(runs["apo_max_power"][0].upload, runs["apo"][0].upload)
    assert runs["random"][0].upload.sum() == runs["apo"][0].upload.sum()
    assert all(run[0].shown_psnr.shape == (10,) for run in runs.values())

    sweep = {threshold: {method: summarise(method_runs, [drive]) for method, method_runs in
                         run_methods([drive], channel, CONFIG, threshold, SWEPT_METHODS).items()}
             for threshold in (24.0, 32.0)}
    assert sweep[32.0]["exact"].energy_j >= sweep[24.0]["exact"].energy_j  # a higher bar costs more
    plot_energy_vs_threshold(sweep, always, tmp_path / "energy.png")
    plot_decisions(drive, {method: method_runs[0] for method, method_runs in runs.items()}, 28.0,
                   tmp_path / "decisions.png")
    assert (tmp_path / "energy.png").stat().st_size > 10_000 and (tmp_path / "decisions.png").stat().st_size > 10_000
    machine = {"cpu": "test cpu", "cores": 2, "torch": "2", "torch_threads": 1}
    text = markdown(GsrmrReportConfig(scenarios=("urban_default",), seeds=(0,), drive=CONFIG), [drive], summaries,
                    sweep, predictor_accuracy([drive]), "evaluate-gsrmr --test", 1.0, machine)
    assert "| GSCLO, APO |" in text and "| always upload (RoboMR) |" in text and "predictor: PSNR MAE" in text
