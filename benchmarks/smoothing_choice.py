"""Could the map smoothing σ be chosen without labels? For every saved model whose cached fit was scored at
σ = 1, 2 and 3 (``benchmarks/generalise.py`` variants), compute two label-free figures per σ and set the σ each
would pick against the σ that scored best on the labelled test set.

    python benchmarks/smoothing_choice.py --models results/s14/models --fits results/s14/fits \\
        --out results/s15/smoothing_choice

The two figures, from the model and its (contaminated) training set only:

- ``inj``: synthetic local defects (:func:`rddpm_signals.synthetic.inject_defects`) written into up to 64
  training samples; the pixel AUPRC of each σ's map on them (AUROC printed too). Picks the σ with the highest AUPRC.
- ``tail``: the maps of up to 128 training samples, z-scored per position (median / MAD over those samples); the
  99.9th percentile of the z-scores. A matched filter maximises a defect's contrast against the noise, so the σ
  whose training maps stand out most is the one matched to the training set's own defects. Picks the largest.

Every map averages ``--draws`` reconstructions (the default's four). ``regret`` = the best σ's test AUPRC minus
the picked σ's (mean over the models of a dataset). Exploratory: what it prints says whether a rule is worth
pre-registering; it decides nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from structure_choice import _cell_of  # noqa: E402

from rddpm_signals import RobustDiffusion  # noqa: E402
from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.base import smooth_maps  # noqa: E402
from rddpm_signals.harness.cells import load_cell_data  # noqa: E402
from rddpm_signals.metrics import pixel_auprc, pixel_auroc  # noqa: E402
from rddpm_signals.scoring import PositionNormalizer  # noqa: E402
from rddpm_signals.synthetic import inject_defects  # noqa: E402

SIGMAS = (1.0, 2.0, 3.0)
INJECTED, TAIL_SAMPLES, TAIL_Q = 64, 128, 99.9


def _variant(sigma: float, draws: int) -> str:
    """The generalise.py variant that scored ``sigma`` (σ = 2 is the default's own scoring)."""
    return f"n_reconstructions={draws}" if sigma == 2.0 else f"n_reconstructions={draws},map_smoothing={sigma:g}"


def figures(det: RobustDiffusion, train_x: np.ndarray, seed: int) -> dict[float, tuple[float, float, float]]:
    """σ → (injected AUROC, injected AUPRC, training tail) for one fitted model."""
    rng = np.random.default_rng(seed)
    Z = det._normalise(train_x)
    pick = np.sort(rng.permutation(len(Z))[:INJECTED])
    injected, mask, kind = inject_defects(Z[pick].numpy(), rng)
    inj_raw = det._raw_maps(torch.from_numpy(injected.astype(np.float32)), det.net_)[0]
    tail_pick = np.sort(rng.permutation(len(Z))[:TAIL_SAMPLES])
    train_raw = det._raw_maps(Z[tail_pick], det.net_)[0]
    out = {}
    for sigma in SIGMAS:
        maps = smooth_maps(inj_raw, sigma)
        auroc = float(np.mean([pixel_auroc(maps[kind == k], mask[kind == k]) for k in np.unique(kind)]))
        train = smooth_maps(train_raw, sigma)
        z = PositionNormalizer().fit(train).transform(train)
        out[sigma] = (auroc, pixel_auprc(maps, mask), float(np.percentile(z, TAIL_Q)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="results/s14/models")
    p.add_argument("--fits", default="results/s14/fits")
    p.add_argument("--draws", type=int, default=4)
    p.add_argument("--out", default="results/s15/smoothing_choice")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for model in sorted(Path(args.models).glob("*.pt")):
        path = Path(args.fits) / f"{model.stem}.json"
        record = json.loads(path.read_text()) if path.exists() else None
        if record is None or not all(_variant(s, args.draws) in record["variants"] for s in SIGMAS):
            continue
        det = RobustDiffusion.load(model, device="cpu").set_params(n_reconstructions=args.draws, map_smoothing=2.0)
        data = load_cell_data(_cell_of(record, model.stem).resolved())
        fig = figures(det, data.train_x, seed=record["seed"])
        test = {s: record["variants"][_variant(s, args.draws)] for s in SIGMAS}
        inj_pick = max(SIGMAS, key=lambda s: fig[s][1])
        tail_pick = max(SIGMAS, key=lambda s: fig[s][2])
        best = max(SIGMAS, key=lambda s: test[s]["pixel_auprc"])
        row = {"dataset": record["dataset"], "seed": record["seed"], "best": best, "inj": inj_pick, "tail": tail_pick}
        for s in SIGMAS:
            row[f"test σ{s:g}"] = f"{test[s]['pixel_auroc']:.3f} / {test[s]['pixel_auprc']:.3f}"
            row[f"inj σ{s:g}"] = f"{fig[s][0]:.3f} / {fig[s][1]:.3f}"
            row[f"tail σ{s:g}"] = f"{fig[s][2]:.2f}"
        row["regret σ2"] = round(test[best]["pixel_auprc"] - test[2.0]["pixel_auprc"], 4)  # today's default
        for rule in ("inj", "tail"):
            row[f"regret {rule}"] = round(test[best]["pixel_auprc"] - test[row[rule]]["pixel_auprc"], 4)
            row[f"ΔAUROC {rule}"] = round(test[row[rule]]["pixel_auroc"] - test[2.0]["pixel_auroc"], 4)
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if not rows:
        print(f"error: no model in {args.models!r} has fits scored at σ = 1, 2 and 3", file=sys.stderr)
        return 2
    rows.sort(key=lambda r: (r["dataset"], r["seed"]))
    columns = list(rows[0])
    cells = [[f"{r[c]:g}" if isinstance(r[c], float) else r[c] for c in columns] for r in rows]
    lines = [markdown_table(columns, cells)]
    summary = [
        "mean AUPRC regret: "
        + ", ".join(f"{r} {np.mean([row[f'regret {r}'] for row in rows]):.4f}" for r in ("σ2", "inj", "tail"))
        + f" ({len(rows)} models)"
    ]
    text = "\n".join(lines + ["", *summary])
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "choice.md", text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
