"""evaluate-predictor: score the trained trajectory predictors (their ONNX files, as the node runs
them) on the held-out test sets, against constant-velocity and constant-turn-rate baselines, and on
simulated traffic; write the report, the metrics, the model cards and the plots.

    evaluate-predictor                      # everything, from models/ and data/trajectories/
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from evaluation.detector_report import machine_description  # noqa: E402
from evaluation.prediction_metrics import PredictionScores  # noqa: E402
from perception.prediction.baselines import constant_turn_rate, constant_velocity  # noqa: E402
from perception.prediction.predictor import ScenePrediction, TrajectoryPredictor, sample_futures  # noqa: E402
from perception.prediction.track_predictor import AGENT_TYPES  # noqa: E402
from perception.prediction.recordings import (ETH_UCY_SCENES, PROTOCOLS, AgentType, Protocol, Recording,  # noqa: E402
                                              Window, apolloscape_split, eth_ucy_split, protocol_windows)
from sim.controller import LaneKeepingConfig, LaneKeepingController, drive_along_lane  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from sim.world import World  # noqa: E402

APOLLOSCAPE_WEIGHTS = {AgentType.VEHICLE: 0.20, AgentType.PEDESTRIAN: 0.58, AgentType.CYCLIST: 0.22}
"""The ApolloScape challenge's weights of the per-type errors in its weighted sums (WSADE, WSFDE)."""
PUBLISHED_BEST_OF_20 = {"Social-GAN": (0.58, 1.18), "Trajectron++": (0.43, 0.86)}
"""Published ETH/UCY best-of-20 ADE/FDE averages (metres) the issue compares with."""
RMSE_SECONDS = (1.0, 2.0, 3.0)
BEST_OF = 20
"""Futures drawn from the predicted mixture for best-of-20."""


@dataclass
class Evaluation:
    """Scores of the model and the baselines on one test set, per agent type."""

    time_step: float
    scores: dict[str, dict[AgentType, PredictionScores]] = field(default_factory=dict)
    """method → agent type → scores. Methods: model (K modes), model_samples (best of 20 draws),
    constant_velocity, constant_turn_rate."""
    examples: list[tuple[Window, ScenePrediction]] = field(default_factory=list)
    """The windows with the most scored moving agents, for plots."""

    def add(self, method: str, agent_type: AgentType, modes: np.ndarray, probabilities: np.ndarray,
            truth: np.ndarray) -> None:
        per_type = self.scores.setdefault(method, {})
        per_type.setdefault(agent_type, PredictionScores(self.time_step)).add(modes, probabilities, truth)

    def summary(self, method: str, agent_type: AgentType) -> dict[str, float]:
        scores = self.scores.get(method, {}).get(agent_type)
        return scores.summary(RMSE_SECONDS) if scores else {"count": 0}


def evaluate(predictor: TrajectoryPredictor, windows: list[Window], protocol: Protocol, description: str,
             seed: int = 0, keep_examples: int = 3) -> Evaluation:
    """Run the model and the baselines on every window; score the agents present in the whole window."""
    rng = np.random.default_rng(seed)
    result = Evaluation(protocol.time_step)
    candidates = []
    for window in tqdm(windows, desc=description, unit="window", leave=False):
        prediction = predictor.predict(window.history, window.history_headings, window.agent_types)
        samples = sample_futures(prediction, BEST_OF, rng)
        single = np.ones((len(window.history), 1))
        baselines = {"constant_velocity": constant_velocity(window.history, protocol.predicted, protocol.time_step),
                     "constant_turn_rate": constant_turn_rate(window.history, protocol.predicted, protocol.time_step)}
        for agent_type in protocol.scored_types:
            scored = window.targets & (window.agent_types == agent_type)
            if not scored.any():
                continue
            truth = window.future[scored]
            result.add("model", agent_type, prediction.means[scored], prediction.probabilities[scored], truth)
            result.add("model_samples", agent_type, samples[scored], single[scored].repeat(BEST_OF, 1), truth)
            for name, futures in baselines.items():
                result.add(name, agent_type, futures[scored][:, None], single[scored], truth)
        travelled = np.linalg.norm(window.future[:, -1] - window.history[:, -1], axis=-1)
        candidates.append((int(np.sum(window.targets & (travelled > 2.0))), len(candidates), window, prediction))
    # Plot windows far apart in time: the busiest of each part of the test set.
    chunks = np.array_split(np.arange(len(candidates)), keep_examples)
    result.examples = [max((candidates[i] for i in chunk), key=lambda c: c[0])[2:] for chunk in chunks if len(chunk)]
    return result


def simulated_recordings(scenario_paths: list[Path], seed: int, duration: float, time_step: float) -> list[Recording]:
    """Ground-truth trajectories of the moving road users of simulated episodes, sampled every
    time_step (the ego drives its lane with the lane-keeping controller)."""
    recordings = []
    control_period = 0.1
    for path in scenario_paths:
        scenario = load_scenario(path)
        world = World(scenario, seed=seed)
        controller = LaneKeepingController(world.lane_centerlines, LaneKeepingConfig())
        samples: list[dict[int, tuple[float, float, float, AgentType]]] = []
        for _ in range(int(round(duration / time_step))):
            drive_along_lane(world, controller, scenario.ego.speed, int(round(time_step / control_period)),
                             control_period)
            samples.append({o.object_id: (o.box.center[0], o.box.center[1], o.box.yaw, AGENT_TYPES[o.label])
                            for o in world.ground_truth() if not o.is_static})
        ids = sorted({object_id for frame in samples for object_id in frame})
        column = {object_id: index for index, object_id in enumerate(ids)}
        positions = np.full((len(samples), len(ids), 2), np.nan)
        headings = np.full((len(samples), len(ids)), np.nan)
        types = np.full(len(ids), AgentType.OTHER, dtype=np.int64)
        for frame, objects in enumerate(samples):
            for object_id, (x, y, yaw, agent_type) in objects.items():
                positions[frame, column[object_id]] = x, y
                headings[frame, column[object_id]] = yaw
                types[column[object_id]] = agent_type
        recordings.append(Recording(f"{path.stem}_seed{seed}", time_step, positions, headings, types, np.array(ids)))
    return recordings


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metric_cells(summary: dict[str, float], keys: tuple[str, ...]) -> str:
    return " | ".join(f"{summary[key]:.2f}" if key in summary else "–" for key in keys)


def _change(model: float, baseline: float) -> str:
    return f"{100.0 * (model - baseline) / baseline:+.0f}%"


def _modes(evaluation: Evaluation) -> int:
    return next(iter(evaluation.scores["model"].values())).best_of[0].shape[0]


def apolloscape_markdown(evaluation: Evaluation, title: str) -> list[str]:
    lines = [f"### {title}", "",
             "| type | agents | CV ADE / FDE | CTRV ADE / FDE | model ADE / FDE (most likely) | vs CV | "
             f"model minADE / minFDE ({_modes(evaluation)} modes) |", "| --- | ---: | --- | --- | --- | --- | --- |"]
    weighted = {method: [0.0, 0.0] for method in ("constant_velocity", "constant_turn_rate", "model")}
    for agent_type in APOLLOSCAPE_WEIGHTS:
        cv, ctrv, model = (evaluation.summary(m, agent_type) for m in ("constant_velocity", "constant_turn_rate", "model"))
        if not model["count"]:
            continue
        for method, summary in (("constant_velocity", cv), ("constant_turn_rate", ctrv), ("model", model)):
            weighted[method][0] += APOLLOSCAPE_WEIGHTS[agent_type] * summary["ade"]
            weighted[method][1] += APOLLOSCAPE_WEIGHTS[agent_type] * summary["fde"]
        lines.append(f"| {agent_type.name.lower()} | {model['count']} | {cv['ade']:.2f} / {cv['fde']:.2f} | "
                     f"{ctrv['ade']:.2f} / {ctrv['fde']:.2f} | **{model['ade']:.2f} / {model['fde']:.2f}** | "
                     f"{_change(model['ade'], cv['ade'])} / {_change(model['fde'], cv['fde'])} | "
                     f"{model['min_ade']:.2f} / {model['min_fde']:.2f} |")
    present = sum(weight for agent_type, weight in APOLLOSCAPE_WEIGHTS.items()
                  if evaluation.summary("model", agent_type)["count"])
    # Without one of the types (no cyclists in the simulator) the others' weights are rescaled to sum to 1.
    cv, ctrv, model = ([value / present for value in weighted[m]]
                       for m in ("constant_velocity", "constant_turn_rate", "model"))
    lines += [f"| weighted sum (WSADE / WSFDE) | | {cv[0]:.2f} / {cv[1]:.2f} | {ctrv[0]:.2f} / {ctrv[1]:.2f} | "
              f"**{model[0]:.2f} / {model[1]:.2f}** | {_change(model[0], cv[0])} / {_change(model[1], cv[1])} | |", "",
              "RMSE (m) of the most likely mode at 1, 2 and 3 s:", "",
              "| type | CV 1 s / 2 s / 3 s | model 1 s / 2 s / 3 s |", "| --- | --- | --- |"]
    keys = tuple(f"rmse_{s:g}s" for s in RMSE_SECONDS)
    for agent_type in APOLLOSCAPE_WEIGHTS:
        model = evaluation.summary("model", agent_type)
        if model["count"]:
            cv = evaluation.summary("constant_velocity", agent_type)
            lines.append(f"| {agent_type.name.lower()} | {_metric_cells(cv, keys).replace(' | ', ' / ')} | "
                         f"{_metric_cells(model, keys).replace(' | ', ' / ')} |")
    return lines + [""]


def eth_ucy_markdown(evaluations: dict[str, Evaluation]) -> list[str]:
    modes = _modes(next(iter(evaluations.values())))
    lines = ["| scene | agents | CV ADE / FDE | CTRV ADE / FDE | model most likely ADE / FDE | model best of 20 ADE / FDE | "
             f"model minADE / minFDE ({modes} modes) | RMSE 1 s / 2 s / 3 s (model) |",
             "| --- | ---: | --- | --- | --- | --- | --- | --- |"]
    rows = {m: [] for m in ("constant_velocity", "constant_turn_rate", "model", "model_samples")}
    keys = tuple(f"rmse_{s:g}s" for s in RMSE_SECONDS)
    for scene, evaluation in evaluations.items():
        summaries = {m: evaluation.summary(m, AgentType.PEDESTRIAN) for m in rows}
        for method, summary in summaries.items():
            rows[method].append(summary)
        cv, ctrv, model, samples = (summaries[m] for m in rows)
        lines.append(f"| {scene} | {model['count']} | {cv['ade']:.2f} / {cv['fde']:.2f} | {ctrv['ade']:.2f} / "
                     f"{ctrv['fde']:.2f} | **{model['ade']:.2f} / {model['fde']:.2f}** | {samples['min_ade']:.2f} / "
                     f"{samples['min_fde']:.2f} | {model['min_ade']:.2f} / {model['min_fde']:.2f} | "
                     f"{_metric_cells(model, keys).replace(' | ', ' / ')} |")
    mean = {m: {k: float(np.mean([s[k] for s in summaries])) for k in ("ade", "fde", "min_ade", "min_fde")}
            for m, summaries in rows.items()}
    cv, ctrv, model, samples = (mean[m] for m in rows)
    lines += [f"| **average** | | {cv['ade']:.2f} / {cv['fde']:.2f} | {ctrv['ade']:.2f} / {ctrv['fde']:.2f} | "
              f"**{model['ade']:.2f} / {model['fde']:.2f}** | {samples['min_ade']:.2f} / {samples['min_fde']:.2f} | "
              f"{model['min_ade']:.2f} / {model['min_fde']:.2f} | |", "",
              "Published best-of-20 averages for comparison: "
              + ", ".join(f"{name} {ade:.2f} / {fde:.2f}" for name, (ade, fde) in PUBLISHED_BEST_OF_20.items())
              + f"; ours {samples['min_ade']:.2f} / {samples['min_fde']:.2f}.", ""]
    return lines


def goals_markdown(apollo: Evaluation, eth_ucy: dict[str, Evaluation]) -> list[str]:
    """The issue's two goals, met or not, from the measured figures."""
    model, cv = apollo.summary("model", AgentType.VEHICLE), apollo.summary("constant_velocity", AgentType.VEHICLE)
    ade_change, fde_change = 1 - model["ade"] / cv["ade"], 1 - model["fde"] / cv["fde"]
    vehicles_met = ade_change >= 0.30 and fde_change >= 0.30
    ade = float(np.mean([e.summary("model", AgentType.PEDESTRIAN)["ade"] for e in eth_ucy.values()]))
    fde = float(np.mean([e.summary("model", AgentType.PEDESTRIAN)["fde"] for e in eth_ucy.values()]))
    pedestrians_met = ade <= 0.45 and fde <= 0.95
    return ["| goal | measured | met |", "| --- | --- | --- |",
            f"| ApolloScape vehicles: ADE and FDE ≥ 30 % below constant velocity (test) | {100 * ade_change:.0f} % / "
            f"{100 * fde_change:.0f} % below | {'yes' if vehicles_met else '**no**'} |",
            f"| ETH/UCY most likely mode, average of 5 scenes ≤ 0.45 / 0.95 m | {ade:.2f} / {fde:.2f} m | "
            f"{'yes' if pedestrians_met else '**no**'} |", ""]


def plot_examples(examples: list[tuple[Window, ScenePrediction]], protocol: Protocol, title: str, path: Path,
                  view: float) -> None:
    """Each window zoomed (±view metres) on the scored agent that constant velocity misses most:
    histories, true futures, the K modes (opacity = probability, most likely thickest) and CV."""
    figure, axes = plt.subplots(1, len(examples), figsize=(5.2 * len(examples), 5.4), squeeze=False)
    for axis, (window, prediction) in zip(axes[0], examples):
        scored = np.flatnonzero(window.targets)
        cv = constant_velocity(window.history, protocol.predicted, protocol.time_step)
        focus = scored[np.argmax(np.linalg.norm(cv[scored, -1] - window.future[scored, -1], axis=-1))]
        for agent in scored:
            history, future = window.history[agent], window.future[agent]
            axis.plot(history[:, 0], history[:, 1], color="0.45", lw=1.5)
            for mode in range(prediction.means.shape[1]):
                path_xy = np.vstack([history[-1], prediction.means[agent, mode]])
                axis.plot(path_xy[:, 0], path_xy[:, 1], color="tab:blue", lw=2.2 if mode == 0 else 1.2,
                          alpha=float(0.3 + 0.7 * prediction.probabilities[agent, mode]))
            axis.plot(*np.vstack([history[-1], future]).T, color="tab:green", lw=2.0)
            axis.plot(*np.vstack([history[-1], cv[agent]]).T, color="tab:red", lw=1.0, ls="--")
        others = np.setdiff1d(np.arange(len(window.history)), scored)
        if len(others):
            axis.scatter(window.history[others, -1, 0], window.history[others, -1, 1], s=8, color="0.7")
        centre = window.history[focus, -1]
        axis.set_xlim(centre[0] - view, centre[0] + view)
        axis.set_ylim(centre[1] - view, centre[1] + view)
        axis.set_aspect("equal")
        axis.set_title(f"{window.source}, {len(scored)} scored agents", fontsize=9)
        axis.set_xlabel("x (m)")
        axis.set_ylabel("y (m)")
    handles = [plt.Line2D([], [], color=c, ls=s, lw=w) for c, s, w in
               (("0.45", "-", 1.5), ("tab:green", "-", 2), ("tab:blue", "-", 2.2), ("tab:red", "--", 1))]
    figure.legend(handles, ["observed", "true future", "predicted modes (opacity = probability, thick: most likely)",
                            "constant velocity"], loc="lower center", ncol=4, fontsize=9)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _members(meta: dict) -> list[dict]:
    """Each member's seed, best epoch and validation ADE; models trained before ensembles carry one's keys."""
    return meta.get("members", [meta])


def _best_epochs(meta: dict) -> str:
    """'49 (0.975 m)' for one network; each member's and the ensemble's for several."""
    members = _members(meta)
    if len(members) == 1:
        return f"{members[0]['best_epoch']} ({meta['best_val_ade']:.3f} m)"
    epochs = ", ".join(str(m["best_epoch"]) for m in members)
    ades = ", ".join(f"{m['best_val_ade']:.3f}" for m in members)
    return f"{epochs} ({ades} m); ensemble {meta['best_val_ade']:.3f} m"


def _ensemble_sentence(meta: dict) -> list[str]:
    members = _members(meta)
    if len(members) == 1:
        return []
    return [f"An ensemble of {len(members)} such networks trained alike from seeds {members[0]['seed']}–"
            f"{members[-1]['seed']} (`train-predictor --members`), run side by side in one ONNX graph: each "
            "member's modes are ranked by probability and modes of equal rank averaged, so the most likely "
            "trajectory is the mean of the members' most likely ones.", ""]


def model_card(name: str, models: dict[str, Path], training: dict[str, dict], lines: list[str]) -> str:
    """Markdown card of one dataset's model(s): data, split, training, metrics, file hashes."""
    card = [f"# Trajectory predictor: {name}", "",
            "HiT-style predictor (perception/prediction): GRU encoder over each agent's history in its own frame "
            "with behaviour statistics and dynamic-centrality features, attention over neighbours, "
            "K-mode Gaussian decoder. Made by `train-predictor`, scored by `evaluate-predictor` "
            "(report: [docs/prediction_evaluation.md](../docs/prediction_evaluation.md)).", "",
            *_ensemble_sentence(training[next(iter(models))]),
            "| file | sha256 | training windows | validation windows | best epoch (val ADE) | training time |",
            "| --- | --- | ---: | ---: | --- | --- |"]
    for fold, onnx_path in models.items():
        meta = training[fold]
        card.append(f"| `{onnx_path.name}` (+ `.pt`) | `{_sha256(onnx_path)[:16]}…` / `{_sha256(onnx_path.with_suffix('.pt'))[:16]}…` | "
                    f"{meta['training_windows']} | {meta['validation_windows']} | {_best_epochs(meta)} | "
                    f"{meta['training_seconds']:.0f} s, {meta['torch_threads']} torch thread(s) |")
    first = training[next(iter(models))]
    card += ["", f"Protocol: observe {first['protocol']['observed']} steps, predict {first['protocol']['predicted']} "
             f"at {first['protocol']['time_step']} s; scored: {', '.join(first['protocol']['scored_types'])}.",
             f"Network: {json.dumps(first['network_config'])}.", f"Features: {json.dumps(first['feature_config'])}.",
             f"Training: {json.dumps(first['train_config'])}; settings per dataset chosen by validation ADE "
             "(`training.train_predictor.DATASET_DEFAULTS`).", "", "Split (recordings):", ""]
    for fold in models:
        split = training[fold]["split"]
        card.append(f"- {fold}: " + "; ".join(f"{part}: {', '.join(names)}" for part, names in split.items()))
    card += ["", "## Test metrics (metres)", ""] + lines
    return "\n".join(card) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate-predictor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path("data/trajectories"))
    parser.add_argument("--report", type=Path, default=Path("docs/prediction_evaluation.md"))
    parser.add_argument("--images", type=Path, default=Path("docs/images"))
    parser.add_argument("--scenes", nargs="+", default=list(ETH_UCY_SCENES), choices=list(ETH_UCY_SCENES))
    parser.add_argument("--sim-duration", type=float, default=60.0, help="simulated seconds per scenario")
    parser.add_argument("--sim-seed", type=int, default=1000, help="seed of the simulated episodes")
    parser.add_argument("--scenarios", nargs="+", type=Path, default=sorted(Path("config/scenarios").glob("*.yaml")))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        return _report(args, started)
    except (OSError, ValueError, RuntimeError) as error:  # ModelFileError among them
        print(f"evaluate-predictor: {error}", file=sys.stderr)
        return 2


def _report(args: argparse.Namespace, started: float) -> int:
    apollo_protocol, eth_protocol = PROTOCOLS["apolloscape"], PROTOCOLS["eth_ucy"]
    apollo_path = args.models / "trajectory_predictor_apolloscape.onnx"
    apollo = TrajectoryPredictor.from_file(apollo_path)
    split = apolloscape_split(args.data / "apolloscape" / "prediction_train")
    apollo_eval = evaluate(apollo, protocol_windows(split["test"], apollo_protocol), apollo_protocol, "apolloscape test")
    apollo_lines = apolloscape_markdown(apollo_eval, "ApolloScape test sequences "
                                        f"({', '.join(r.name for r in split['test'])})")
    plot_examples(apollo_eval.examples, apollo_protocol, "ApolloScape test: observed 3 s, predicted 3 s",
                  args.images / "prediction_apolloscape.png", view=30.0)

    eth_models = {scene: args.models / f"trajectory_predictor_eth_ucy_{scene}.onnx" for scene in args.scenes}
    eth_predictors = {scene: TrajectoryPredictor.from_file(path) for scene, path in eth_models.items()}
    eth_evals = {}
    for scene, predictor in eth_predictors.items():
        test = eth_ucy_split(args.data / "eth_ucy" / "raw", scene)["test"]
        eth_evals[scene] = evaluate(predictor, protocol_windows(test, eth_protocol), eth_protocol, f"eth_ucy {scene}",
                                    keep_examples=1)
    eth_lines = eth_ucy_markdown(eth_evals)
    plot_examples([e.examples[0] for e in eth_evals.values()], eth_protocol,
                  "ETH/UCY held-out scenes: observed 3.2 s, predicted 4.8 s", args.images / "prediction_eth_ucy.png",
                  view=6.0)

    simulated = simulated_recordings(args.scenarios, args.sim_seed, args.sim_duration, apollo_protocol.time_step)
    sim_eval = evaluate(apollo, protocol_windows(simulated, apollo_protocol), apollo_protocol, "simulated traffic")
    sim_lines = apolloscape_markdown(sim_eval, f"Simulated traffic ({', '.join(r.name for r in simulated)}, "
                                     f"{args.sim_duration:g} s each), ApolloScape model")
    plot_examples(sim_eval.examples, apollo_protocol, "Simulated traffic, ApolloScape model",
                  args.images / "prediction_simulated.png", view=30.0)

    def described(model: TrajectoryPredictor) -> dict:
        return {**model.metadata, "network_config": dataclasses.asdict(model.network_config),
                "feature_config": dataclasses.asdict(model.feature_config)}

    training = {"apolloscape": described(apollo)}
    training.update({f"eth_ucy_{scene}": described(model) for scene, model in eth_predictors.items()})
    metrics = {"apolloscape": {t.name.lower(): {m: apollo_eval.summary(m, t) for m in apollo_eval.scores}
                               for t in apollo_protocol.scored_types},
               "eth_ucy": {scene: {m: e.summary(m, AgentType.PEDESTRIAN) for m in e.scores} for scene, e in eth_evals.items()},
               "simulated": {t.name.lower(): {m: sim_eval.summary(m, t) for m in sim_eval.scores}
                             for t in apollo_protocol.scored_types}}
    (args.models / "trajectory_predictor.metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (args.models / "trajectory_predictor_apolloscape.md").write_text(
        model_card("ApolloScape (urban traffic)", {"apolloscape": apollo_path}, training, apollo_lines[2:]))
    (args.models / "trajectory_predictor_eth_ucy.md").write_text(
        model_card("ETH/UCY (pedestrians), leave one scene out", {f"eth_ucy_{s}": p for s, p in eth_models.items()},
                   training, eth_lines))

    elapsed = time.perf_counter() - started
    machine = machine_description(torch.device("cpu"))
    report = [f"# Trajectory prediction evaluation ({datetime.now(timezone.utc):%Y-%m-%d})", "",
              f"Made by `evaluate-predictor` in {elapsed:.0f} s on {machine['cpu']} ({machine['cores']} cores, "
              f"Python {machine['python']}, onnxruntime {onnxruntime.__version__}). Models: the ONNX files in "
              "`models/` run in onnxruntime exactly as the `trajectory_predictor` node runs them. "
              "ADE/FDE in metres; *most likely* is the mode of highest probability; best of 20 draws 20 futures "
              "from the predicted Gaussian mixture (seed 0); minADE over the K mode means is given too. "
              "CV: constant velocity from the last observed step; CTRV: constant speed and turn rate from the "
              "last two steps.", "", "## Against the goals", ""] + goals_markdown(apollo_eval, eth_evals) + [
              "## ApolloScape (observe 3 s, predict 3 s, 2 Hz)", "",
              "Split by sequence (`perception.prediction.recordings.APOLLOSCAPE_SPLIT`): sequences 9062 and "
              "9063 test, 9060 and 9061 validation, the other 12 train. Scored: every vehicle, pedestrian and "
              "cyclist present in all 12 frames of a window (every start frame); weighted sums use the "
              "ApolloScape challenge weights (vehicle 0.20, pedestrian 0.58, cyclist 0.22).", ""]
    report += apollo_lines + ["![ApolloScape examples](images/prediction_apolloscape.png)", "",
                              "## ETH/UCY (leave one scene out; observe 8, predict 12 at 0.4 s)", "",
                              "Social-GAN's split and windows: each held-out scene's whole recordings are the test "
                              "set, the other scenes' train files train and their val files validate; every "
                              "pedestrian present in all 20 frames of a window is scored.", ""]
    report += eth_lines + ["![ETH/UCY examples](images/prediction_eth_ucy.png)", "", "## Simulated traffic", "",
                           "The ApolloScape model, unchanged, on the ground-truth trajectories of the embedded "
                           f"simulated world (seed {args.sim_seed}, ego driving its lane), sampled at 2 Hz.", ""]
    report += sim_lines + ["![Simulated examples](images/prediction_simulated.png)", ""]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(report) + "\n")
    print("\n".join(apollo_lines + eth_lines + sim_lines))
    print(f"wrote {args.report}, models/trajectory_predictor*.md and metrics in {elapsed:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
