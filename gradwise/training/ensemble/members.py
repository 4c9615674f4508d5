"""Members of an ensemble: one model per seed (`train_seeds`), or snapshots of one run (`Snapshots`).

Different seeds give deep ensembles (Lakshminarayanan et al., 2017); weights kept at the ends of
the cycles of a cyclic learning-rate schedule give a snapshot ensemble from a single run (Huang et
al., 2017). Either way the members go into an `Ensemble` (``model.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer
from gradwise.training.callback_base import Callback
from gradwise.training.ensemble.model import Ensemble

if TYPE_CHECKING:
    from gradwise.training.trainer import Trainer

__all__ = ["Snapshots", "train_seeds"]


def train_seeds(
    build: Callable[[int], Trainer],
    seeds: Iterable[int],
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    epochs: int = 1,
) -> list[Layer]:
    """Train one model per seed; returns the trained models (build an `Ensemble` from them).

    For each seed: ``gradwise.manual_seed(seed)``, then ``trainer = build(seed)`` (a fresh model,
    optimizer and Trainer; draw initial weights from the default generator or from a generator
    seeded with `seed`), then ``trainer.fit(train_loader, val_loader, epochs)``. A loader without
    its own ``rng`` shuffles from the default generator, so each seed also sees its own data order.
    """
    from gradwise.random import manual_seed

    models = []
    for seed in seeds:
        manual_seed(int(seed))
        trainer = build(int(seed))
        trainer.fit(train_loader, val_loader, epochs=epochs)
        models.append(trainer.model)
    if not models:
        raise ValueError("train_seeds: no seeds given")
    return models


# ---------------------------------------------------------------------------------------- snapshots


class Snapshots(Callback):
    """Keep copies of the weights every `every` epochs, to build a snapshot ensemble.

    Pair it with a cyclic schedule whose cycle lasts `every` epochs (cosine with restarts,
    `gradwise.optim.schedules.Cosine(..., restarts=True)`): each snapshot is then taken at the end
    of a cycle, where the learning rate is smallest and the model sits in a minimum (Huang et al.,
    2017). ``callback.ensemble()`` builds the `Ensemble`.

    Parameters
    ----------
    every : int
        Take a snapshot after epochs ``every``, ``2 * every``, ... (counting completed epochs
        from 1, as Keras' ``{epoch}`` in file names).
    keep : int, optional
        Keep only the last `keep` snapshots (the early ones are usually worse).
    out_dir : path-like, optional
        Also write each snapshot to ``out_dir/snapshot_epoch_0005.safetensors`` (atomically); a
        resumed run reads them back through `load_state_dict`. In memory only when None.

    Attributes
    ----------
    snapshots : list of (int, dict)
        ``(epochs completed, state_dict)`` in order.
    """

    def __init__(self, every: int = 1, keep: int | None = None, out_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"Snapshots: {every=} must be an integer >= 1")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1):
            raise ValueError(f"Snapshots: {keep=} must be an integer >= 1 or None")
        self.every = int(every)
        self.keep = None if keep is None else int(keep)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.snapshots: list[tuple[int, dict[str, np.ndarray]]] = []

    def _path(self, epochs_done: int) -> Path:
        assert self.out_dir is not None
        return self.out_dir / f"snapshot_epoch_{epochs_done:04d}.safetensors"

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        if done % self.every:
            return
        state = self.model.state_dict()
        self.snapshots.append((done, state))
        if self.out_dir is not None:
            from gradwise.io import save

            self.out_dir.mkdir(parents=True, exist_ok=True)
            save(state, self._path(done))
        if self.keep is not None and len(self.snapshots) > self.keep:
            del self.snapshots[: len(self.snapshots) - self.keep]

    def ensemble(
        self, template: Layer | None = None, weights: Sequence[float] | None = None, mode: str = "mean_probs"
    ) -> Ensemble:
        """An `Ensemble` of the kept snapshots (copies of `template`, the trainer's model by default)."""
        if not self.snapshots:
            raise ValueError("Snapshots: no snapshot taken yet (train for at least `every` epochs)")
        return Ensemble.from_state_dicts(
            template if template is not None else self.model, [s for _, s in self.snapshots], weights, mode
        )

    def state_dict(self) -> dict[str, Any]:
        """The epochs of the kept snapshots (their weights live in `out_dir`, or are lost on resume)."""
        return {"epochs": [e for e, _ in self.snapshots]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Read the snapshots listed in `state` back from `out_dir` (nothing to read without one)."""
        epochs = [int(e) for e in state.get("epochs", [])]
        if self.out_dir is None:
            self.snapshots = []
            return
        from gradwise.io import load

        self.snapshots = [(e, load(self._path(e))) for e in epochs]  # checked: clear error if torn

    def __repr__(self) -> str:
        return f"Snapshots(every={self.every}, keep={self.keep}, taken={[e for e, _ in self.snapshots]})"

