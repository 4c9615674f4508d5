"""Batch normalization and dropout on MNIST-1D: the effects the literature describes, measured.

The same MLP (40-256-256-10, ReLU, Adam, batch 100, 60 epochs) is trained with the `Trainer` four
ways:

    plain       lr 1e-3   Adam's usual rate
    batch norm  lr 1e-2   BatchNorm1d after each hidden Linear, at 10x the rate (--high-lr)
    dropout     lr 1e-3   Dropout(0.5) after each hidden ReLU, at the plain rate
    plain       lr 1e-2   the control: the plain MLP at batch norm's rate

Run from the repository root (20-30 s; the PNGs go to OUT_DIR, by default examples/out/):

    python examples/batchnorm_dropout.py [OUT_DIR] [--epochs N] [--seed S] [--high-lr LR]

It writes ``bn_dropout_loss.png`` and ``bn_dropout_accuracy.png`` (training set solid, validation
dashed) and prints the final numbers. What to look for, with the measured numbers, is in
``docs/normalization.md``.

The training curves are measured in evaluation mode after each epoch, like the validation curves:
the Trainer's own ``loss``/``accuracy`` average over the epoch in training mode, with dropout active
and batch statistics, which understates what the network has learned and would make dropout's
train/validation gap look smaller than it is.
"""

from __future__ import annotations

import os

# One BLAS thread, set before NumPy loads OpenBLAS (set the variable yourself to override). The
# matrix products here are small (100 x 256 by 256 x 256): a second thread gains nothing, and on a
# busy machine the threads spin-wait for each other (the script once took 3.5 minutes instead of
# 20 s). It also makes the printed numbers independent of the number of cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

import gradwise as gw
from gradwise.data import DataLoader, load_mnist1d
from gradwise.data.splits import train_test_split
from gradwise.layers import Linear, ReLU
from gradwise.layers.dropout import Dropout
from gradwise.layers.normalization import BatchNorm1d
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import Adam

OUT = Path(__file__).resolve().parent / "out"
HIDDEN = 256
BATCH = 100
LOSS_TARGET = 0.5  # "epochs to a training loss below 0.5" measures speed

LR = 1e-3


def runs(high_lr: float) -> dict[str, tuple[str, float, str, float]]:
    """name: (variant, learning rate, colour, line width)."""
    return {
        f"plain, lr {LR:g}": ("plain", LR, "tab:blue", 1.8),
        f"batch norm, lr {high_lr:g}": ("batchnorm", high_lr, "tab:orange", 1.8),
        f"dropout 0.5, lr {LR:g}": ("dropout", LR, "tab:green", 1.8),
        f"plain, lr {high_lr:g} (control)": ("plain", high_lr, "tab:gray", 1.0),
    }


def mlp(variant: str, rng: np.random.Generator) -> gw.Sequential:
    """40 -> 256 -> 256 -> 10 with ReLU; batch norm goes between Linear and ReLU (as Ioffe &
    Szegedy), dropout after the ReLU."""
    layers: list[gw.Layer] = []
    width = 40
    for _ in range(2):
        layers.append(Linear(width, HIDDEN, rng=rng))
        if variant == "batchnorm":
            layers.append(BatchNorm1d(HIDDEN))
        layers.append(ReLU())
        if variant == "dropout":
            layers.append(Dropout(0.5, rng=rng))
        width = HIDDEN
    layers.append(Linear(width, 10, rng=rng))
    return gw.Sequential(*layers)


class EvalOnTrainingSet(gw.callbacks.Callback):
    """Adds ``train_loss`` and ``train_accuracy``, measured in evaluation mode, to every epoch's logs."""

    def __init__(self, loader: DataLoader) -> None:
        super().__init__()
        self.loader = loader

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        assert self.trainer is not None and logs is not None
        results = self.trainer.evaluate(self.loader)
        logs["train_loss"], logs["train_accuracy"] = results["loss"], results["accuracy"]


def train(variant: str, lr: float, data: dict[str, np.ndarray], epochs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)  # weights, dropout masks and shuffling: one stream per run
    model = mlp(variant, rng)
    train_loader = DataLoader(data["x_train"], data["y_train"], batch_size=BATCH, shuffle=True, rng=rng)
    train_eval = DataLoader(data["x_train"], data["y_train"], batch_size=1000)
    val_loader = DataLoader(data["x_val"], data["y_val"], batch_size=1000)
    trainer = gw.Trainer(
        model,
        SoftmaxCrossEntropy(),
        Adam(model.parameters(), lr=lr),
        metrics=[gw.metrics.accuracy],
        callbacks=[EvalOnTrainingSet(train_eval)],
        progress=False,
    )
    start = time.perf_counter()
    history = trainer.fit(train_loader, val_loader, epochs=epochs)
    seconds = time.perf_counter() - start
    test = trainer.evaluate(DataLoader(data["x_test"], data["y_test"], batch_size=1000))
    loss = np.asarray(history["loss"])  # training mode: what the optimizer minimized
    below = np.flatnonzero(loss < LOSS_TARGET)
    return {
        "history": history,
        "epochs_to_target": int(below[0]) + 1 if below.size else None,
        # Total rise of the epoch training loss: 0 for a curve that only goes down.
        "climb": float(np.maximum(np.diff(loss), 0).sum()),
        "test_accuracy": test["accuracy"],
        "seconds": seconds,
    }


def plot(results: dict[str, dict[str, Any]], styles: dict[str, tuple[str, float, str, float]], metric: str,
         path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, result in results.items():
        _, _, color, width = styles[name]
        history = result["history"]
        epochs = np.arange(1, len(history) + 1)
        ax.plot(epochs, history[f"train_{metric}"], color=color, linewidth=width, label=f"{name}: train")
        ax.plot(epochs, history[f"val_{metric}"], color=color, linewidth=width, linestyle="--",
                label=f"{name}: validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric == "loss":
        ax.set_yscale("log")
    ax.set_title(f"MNIST-1D MLP 40-256-256-10: {metric} (evaluation mode; train solid, validation dashed)")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, ncol=4)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=OUT, help="where to write the PNGs")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--high-lr", type=float, default=1e-2, help="rate of the batch-norm run and the control")
    args = parser.parse_args()
    styles = runs(args.high_lr)

    x, y, x_test, y_test = load_mnist1d()  # 4000 train / 1000 test, generated locally
    x_train, x_val, y_train, y_val = train_test_split(x, y, test=1000, stratify=y, rng=np.random.default_rng(0))
    data = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "x_test": x_test, "y_test": y_test}

    results = {name: train(variant, lr, data, args.epochs, args.seed) for name, (variant, lr, _, _) in styles.items()}

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for metric in ("loss", "accuracy"):
        plot(results, styles, metric, args.out_dir / f"bn_dropout_{metric}.png")

    print(f"MNIST-1D, 3000 train / 1000 validation / 1000 test, {args.epochs} epochs, seed {args.seed}")
    print("train columns: evaluation mode at the end; 'epochs to <0.5' and 'climb' use the training-mode loss")
    header = f"{'run':<26} {'epochs to <0.5':>14} {'climb':>6} {'train loss':>10} {'val loss':>8} " \
             f"{'train acc':>9} {'val acc':>7} {'gap':>6} {'test acc':>8} {'time':>6}"
    print(header)
    for name, r in results.items():
        last = r["history"].epochs[-1]
        reached = "never" if r["epochs_to_target"] is None else str(r["epochs_to_target"])
        gap = last["train_accuracy"] - last["val_accuracy"]
        print(f"{name:<26} {reached:>14} {r['climb']:>6.2f} {last['train_loss']:>10.3f} {last['val_loss']:>8.3f} "
              f"{last['train_accuracy']:>9.3f} {last['val_accuracy']:>7.3f} {gap:>6.3f} {r['test_accuracy']:>8.3f} "
              f"{r['seconds']:>5.1f}s")
    print(f"plots: {args.out_dir / 'bn_dropout_loss.png'}, {args.out_dir / 'bn_dropout_accuracy.png'}")


if __name__ == "__main__":
    main()
