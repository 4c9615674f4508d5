"""Weight and gradient histograms per parameter, at chosen epochs of a run.

`HistogramSnapshots` records, at the end of chosen epochs, a histogram of every parameter's values
and of its gradient, and saves it (a few kilobytes) in ``RUN/histograms/epoch_0005.safetensors``;
`gradwise.viz.plot_run` and ``gradwise plot RUN`` draw them as
``RUN/plots/histograms_epoch_0005.png`` (this module computes and stores the data; `gradwise.viz`
draws it). Watching them tells whether weights still move, whether a
layer's gradients vanish or explode compared with the others, and whether a frozen layer stayed
frozen (Glorot & Bengio, 2010, plot the same per-layer distributions to diagnose saturation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.core import Layer
from gradwise.training.callback_base import Callback

__all__ = ["HistogramSnapshots", "histogram_data", "load_histograms", "save_histograms"]

# Per parameter and kind ("weight" or "grad"): counts (bins,), edges (bins + 1,) and
# stats [mean, std, min, max, rms] (5,), all float64.
Histograms = dict[str, Any]
_STATS = ("mean", "std", "min", "max", "rms")


def histogram_data(model: Layer, bins: int = 50) -> Histograms:
    """Histograms of every parameter's values and gradient.

    Parameters
    ----------
    model : Layer
    bins : int
        Equal-width bins between each array's minimum and maximum (`numpy.histogram`); small
        arrays get fewer, max(10, 2 sqrt(size)).

    Returns
    -------
    dict
        ``{"names": [...], "frozen": [...], "weight": {name: {"counts", "edges", "stats"}},
        "grad": {...}}``; counts (bins,), edges (bins + 1,), stats ``[mean, std, min, max, rms]``.
        Gradients are those currently in ``Parameter.grad`` (at the end of an epoch: the last
        batch's, penalty included and after clipping, as the optimizer used them).
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"histogram_data: {bins=} must be an integer >= 1")
    data: Histograms = {"names": [], "frozen": [], "weight": {}, "grad": {}}
    for name, p in model.named_parameters():
        data["names"].append(name)
        if not p.requires_grad:
            data["frozen"].append(name)
        for kind, values in (("weight", p.data), ("grad", p.grad)):
            v = np.asarray(values, dtype=np.float64).ravel()
            finite = v[np.isfinite(v)]
            if finite.size == 0:
                finite = np.zeros(1)
            # At most ~2 sqrt(n) bins: a 3-entry bias gets a few wide bars, not 50 slivers.
            counts, edges = np.histogram(finite, bins=min(int(bins), max(10, int(2 * np.sqrt(finite.size)))))
            stats = np.array(
                [finite.mean(), finite.std(), finite.min(), finite.max(), np.sqrt(np.mean(finite**2))]
            )
            data[kind][name] = {"counts": counts.astype(np.float64), "edges": edges, "stats": stats}
    return data


def save_histograms(path: str | os.PathLike[str], data: Histograms, epoch: int | None = None) -> Path:
    """Write `histogram_data` output to a safetensors file (atomically); `epoch` goes in its metadata."""
    from safetensors.numpy import save

    from gradwise.training.rundir import atomic_write_bytes

    tensors = {
        f"{kind}/{name}/{field}": np.ascontiguousarray(data[kind][name][field])
        for kind in ("weight", "grad")
        for name in data["names"]
        for field in ("counts", "edges", "stats")
    }
    metadata = {"names": json.dumps(data["names"]), "frozen": json.dumps(data["frozen"])}
    if epoch is not None:
        metadata["epoch"] = str(int(epoch))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_histograms(path: str | os.PathLike[str]) -> tuple[Histograms, int | None]:
    """Read a file written by `save_histograms`: ``(data, epoch)``.

    Raises `ValueError` naming the file if it is not such a file.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        names = json.loads(metadata["names"])
        frozen = json.loads(metadata.get("frozen", "[]"))
        data: Histograms = {"names": names, "frozen": frozen, "weight": {}, "grad": {}}
        for kind in ("weight", "grad"):
            for name in names:
                data[kind][name] = {
                    field: tensors[f"{kind}/{name}/{field}"] for field in ("counts", "edges", "stats")
                }
    except FileNotFoundError:
        raise
    except Exception as err:  # a foreign or truncated file: safetensors, JSON or key errors
        raise ValueError(f"{str(path)!r} is not a histogram file written by gradwise: {err}") from err
    epoch = int(metadata["epoch"]) if "epoch" in metadata else None
    return data, epoch


def histogram_file(directory: str | os.PathLike[str], epochs_done: int) -> Path:
    """``directory/epoch_0005.safetensors`` for the histograms after 5 epochs."""
    return Path(directory) / f"epoch_{int(epochs_done):04d}.safetensors"


class HistogramSnapshots(Callback):
    """Save weight and gradient histograms of every parameter at the end of chosen epochs.

    Parameters
    ----------
    epochs : sequence of int
        Take them after these numbers of completed epochs (1-based: ``(1, 10, 20)`` is after the
        first, tenth and twentieth epochs; the file names use the same numbers).
    every : int, optional
        Also after every `every` epochs.
    out_dir : path-like, optional
        Where the ``epoch_0005.safetensors`` files go; by default ``RUN/histograms`` of the
        trainer's run directory (one of the two is required).
    bins : int
        Bins per histogram.
    draw : callable, optional
        Also draw each snapshot at once, as ``draw(data, path, title=...)`` with the
        `histogram_data` dict, the PNG path ``RUN/plots/histograms_epoch_0005.png`` (or in
        `out_dir` when the trainer has no run directory) and a title such as ``"after epoch 5"``;
        pass `gradwise.viz.plot_histogram_data` (``gradwise train`` does). By default nothing is
        drawn during training: a run directory's plots are drawn from the saved files when the run
        finishes, and ``gradwise plot RUN`` redraws them at any time.

    Attributes
    ----------
    taken : list of int
        The epochs (completed, 1-based) saved so far.
    """

    def __init__(
        self,
        epochs: Sequence[int] = (),
        every: int | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        bins: int = 50,
        draw: Callable[..., object] | None = None,
    ) -> None:
        super().__init__()
        chosen = []
        for e in epochs:
            if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1:
                raise ValueError(f"HistogramSnapshots: epochs={list(epochs)!r} must be integers >= 1 (completed epochs)")
            chosen.append(int(e))
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1):
            raise ValueError(f"HistogramSnapshots: {every=} must be an integer >= 1 or None")
        if not chosen and every is None:
            raise ValueError("HistogramSnapshots: give epochs=(...) or every=k")
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"HistogramSnapshots: {bins=} must be an integer >= 1")
        if draw is not None and not callable(draw):
            raise ValueError(f"HistogramSnapshots: draw={draw!r} must be a function (data, path, title=...) or None")
        self.epochs = tuple(sorted(set(chosen)))
        self.every = None if every is None else int(every)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.bins = int(bins)
        self.draw = draw
        self.taken: list[int] = []

    def _dirs(self) -> tuple[Path, Path]:
        run = getattr(self.trainer, "run_dir", None)
        if self.out_dir is not None:
            data_dir = self.out_dir
        elif run is not None:
            data_dir = Path(run.path) / "histograms"
        else:
            raise ValueError("HistogramSnapshots: give out_dir=..., or a Trainer with a run_dir")
        plot_dir = Path(run.plots_dir) if run is not None else data_dir
        return data_dir, plot_dir

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._dirs()  # fail before training, not after the first chosen epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        if done not in self.epochs and not (self.every is not None and done % self.every == 0):
            return
        data_dir, plot_dir = self._dirs()
        data = histogram_data(self.model, self.bins)
        save_histograms(histogram_file(data_dir, done), data, epoch=done)
        if self.draw is not None:
            self.draw(data, plot_dir / f"histograms_epoch_{done:04d}.png", title=f"after epoch {done}")
        self.taken.append(done)

    def state_dict(self) -> dict[str, Any]:
        return {"taken": list(self.taken)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.taken = [int(e) for e in state.get("taken", [])]

    def __repr__(self) -> str:
        return f"HistogramSnapshots(epochs={self.epochs}, every={self.every}, taken={self.taken})"
