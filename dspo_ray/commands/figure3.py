"""The paper's Figure 3: why the discriminator must be return-agnostic, on a 2-D toy.

Each sample is a point (return, risk); it is safe when risk < 0.5. The safe demonstrations are
safe AND high-return; the unlabelled samples cover every return, safe or not. Three discriminators
are trained with DSPO's own update step (dspo_ray.dspo.discriminator.update_step; a sample is a
one-step "trajectory" of the MLP discriminator):

(b) plain: eq. (1) only. It separates the demonstrations from everything else, so its boundary
    follows the return too and misses the low-return safe samples;
(c) with gradient penalty: smoother, but still return-driven;
(d) return-agnostic: eq. (1) + coefficient x vCLUB(signal; return bin); the signal may not carry
    return information, so the boundary follows the risk alone.

``dspo-figure3 --out docs/results/figure3.png`` (= ``python experiments/figure3.py``) draws data + the three boundaries
and prints each variant's recall of the safe unlabelled samples (all, and low-return ones).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dspo_ray.dspo.config import DiscriminatorConfig
from dspo_ray.dspo.discriminator import return_bins, update_step
from dspo_ray.dspo.safety_transformer import MLPDiscriminator, ReturnClassifier

SAFE_RISK = 0.5


@dataclass
class ToyData:
    demos: np.ndarray
    """(n, 2) points (return, risk) of the safe demonstrations"""
    unlabelled: np.ndarray
    """(m, 2)"""

    @property
    def unlabelled_safe(self) -> np.ndarray:  # the hidden truth, for the metrics only
        return self.unlabelled[:, 1] < SAFE_RISK


def make_toy_data(seed: int = 0, n_demos: int = 30, n_unlabelled: int = 600) -> ToyData:
    rng = np.random.default_rng(seed)
    demos = np.stack([rng.uniform(0.75, 1.0, n_demos), rng.uniform(0.05, 0.45, n_demos)], 1)
    unlabelled = rng.uniform(0, 1, (n_unlabelled, 2))
    return ToyData(demos.astype(np.float32), unlabelled.astype(np.float32))


VARIANTS = {
    "plain": dict(return_agnostic=False, gradient_penalty=0.0),
    "gradient penalty": dict(return_agnostic=False, gradient_penalty=1.0),
    "return-agnostic": dict(return_agnostic=True, gradient_penalty=0.0),
}

TOY_CONFIG = DiscriminatorConfig(variant="mlp", mlp_hidden=(64, 64), dropout=0.0, batch_size=128,
                                 steps=1500, learning_rate=3e-3, weight_decay=0.0, vclub_coef=1.0,
                                 return_bins=10, estimator_steps=5, estimator_learning_rate=3e-3,
                                 vclub_samples="batch")


def _as_windows(points: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Points as one-step windows of the MLP discriminator (the 'action' is a constant 0)."""
    n = len(points)
    return (torch.as_tensor(points)[:, None, :], torch.zeros(n, 1, 1),
            torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 1, dtype=torch.bool))


def train_toy(data: ToyData, variant: str, seed: int = 0,
              config: DiscriminatorConfig = TOY_CONFIG) -> MLPDiscriminator:
    config = replace(config, **VARIANTS[variant])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MLPDiscriminator(2, 1, config.mlp_hidden, config.dropout)
    model.normalizer.set_stats(np.concatenate([data.demos, data.unlabelled]),
                               np.zeros((1, 1), np.float32))
    estimator = ReturnClassifier(config.return_bins, config.estimator_hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    estimator_optimizer = torch.optim.Adam(estimator.parameters(), lr=config.estimator_learning_rate)
    all_points = np.concatenate([data.demos, data.unlabelled])
    edges_source = all_points[:, 0]  # the return is the first coordinate
    half = config.batch_size // 2
    labels = torch.cat([torch.ones(half), torch.zeros(config.batch_size - half)])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(config.steps):
        points = np.concatenate([data.demos[rng.integers(0, len(data.demos), half)],
                                 data.unlabelled[rng.integers(0, len(data.unlabelled),
                                                              config.batch_size - half)]])
        bins = return_bins(np.concatenate([edges_source, points[:, 0]]), config.return_bins)
        bins = torch.as_tensor(bins[len(edges_source):])
        update_step(model, estimator, optimizer, estimator_optimizer, _as_windows(points), labels,
                    bins, config, generator)
    return model.eval()


@torch.no_grad()
def signal(model: MLPDiscriminator, points: np.ndarray) -> np.ndarray:
    return torch.sigmoid(model(*_as_windows(points.astype(np.float32)))).numpy()


def recalls(model: MLPDiscriminator, data: ToyData, low_return: float = 0.5) -> dict[str, float]:
    """Recall of the safe unlabelled samples (signal > 0.5): all of them, and low-return ones."""
    predicted = signal(model, data.unlabelled) > 0.5
    safe = data.unlabelled_safe
    low = safe & (data.unlabelled[:, 0] < low_return)
    unsafe_high = ~safe & (data.unlabelled[:, 0] >= low_return)
    return {"recall": float(predicted[safe].mean()), "recall_low_return": float(predicted[low].mean()),
            "false_positive_unsafe_high_return": float(predicted[unsafe_high].mean())}


def draw(data: ToyData, models: dict[str, MLPDiscriminator], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(models), figsize=(4 * (1 + len(models)), 4), sharey=True)
    safe = data.unlabelled_safe

    def scatter(ax):
        ax.scatter(*data.unlabelled[safe].T, s=6, c="tab:green", alpha=0.5, label="unlabelled safe")
        ax.scatter(*data.unlabelled[~safe].T, s=6, c="tab:red", alpha=0.5, label="unlabelled unsafe")
        ax.scatter(*data.demos.T, s=18, c="tab:blue", marker="*", label="safe demonstrations")
        ax.set_xlabel("return")
    scatter(axes[0])
    axes[0].set_ylabel("risk (safe below 0.5)")
    axes[0].set_title("(a) data")
    axes[0].legend(fontsize=7, loc="upper left")
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 120), np.linspace(0, 1, 120)), -1).reshape(-1, 2)
    for ax, (letter, (name, model)) in zip(axes[1:], zip("bcd", models.items())):
        z = signal(model, grid).reshape(120, 120)
        ax.contourf(grid[:, 0].reshape(120, 120), grid[:, 1].reshape(120, 120), z,
                    levels=np.linspace(0, 1, 11), cmap="Blues", alpha=0.6)
        ax.contour(grid[:, 0].reshape(120, 120), grid[:, 1].reshape(120, 120), z, levels=[0.5],
                   colors="k")
        scatter(ax)
        r = recalls(model, data)
        ax.set_title(f"({letter}) {name}\nrecall {r['recall']:.2f}, low-return {r['recall_low_return']:.2f}",
                     fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/results/figure3.png"),
                   help="the figure's PNG (default: docs/results/figure3.png)")
    p.add_argument("--seed", type=int, default=0, help="seed of the toy data and of training")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = make_toy_data(args.seed)
    models = {name: train_toy(data, name, args.seed) for name in VARIANTS}
    for name, model in models.items():
        print(f"{name:>18}: " + ", ".join(f"{k} {v:.3f}" for k, v in recalls(model, data).items()))
    print("figure:", draw(data, models, args.out))
    return 0


def cli() -> int:
    """The ``dspo-figure3`` command."""
    from dspo_ray.cli import run_cli

    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
