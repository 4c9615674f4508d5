"""`TabularLearner`: a fitted `TabularProcessor` and its model, trained and used on raw rows.

``tabular_learner(processor_or_columns, layers=[200, 100], ...)`` builds one in a line;
``learner.fit(train, valid, epochs=...)`` trains it (AdamW with a one-cycle schedule, as fastai's
``fit_one_cycle``); ``learner.predict(rows)`` goes raw rows -> processor -> model -> labels.
`load_learner` reads one back from `TabularLearner.save`'s folder or from a ``gradwise train``
run directory (``processor.json``, ``config.toml``, ``checkpoints/``). See ``docs/tabular.md``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.core import Sequential
from gradwise.data.tabular import Table
from gradwise.data.tabular_preprocessing import TabularProcessor
from gradwise.fileio import atomic_write_bytes
from gradwise.tabular.model import embedding_sizes, tabular_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["MODEL_DEFAULTS", "TabularLearner", "load_learner", "model_from_config", "tabular_learner"]

#: The options of the tabular model and their defaults (fastai's `tabular_learner`/`TabularModel`):
#: the keys of a config's ``[model] learner = "tabular"`` table too.
MODEL_DEFAULTS: dict[str, Any] = {
    "layers": [200, 100],
    "dropout": 0.0,
    "emb_dropout": 0.0,
    "emb_sizes": {},
    "bn_cont": True,
    "use_bn": True,
    "bn_final": False,
}
LEARNER_FILE = "tabular.json"
WEIGHTS_FILE = "weights.safetensors"
PROCESSOR_FILE = "processor.json"

Rows = Table | Mapping[str, Any] | Sequence[Mapping[str, Any]]


def model_from_config(
    processor: TabularProcessor, options: Mapping[str, Any] | None = None, rng: np.random.Generator | None = None
) -> Sequential:
    """The tabular model for a fitted `processor`, with `options` (keys of `MODEL_DEFAULTS`) over the defaults."""
    opts = {**MODEL_DEFAULTS, **dict(options or {})}
    unknown = sorted(set(opts) - set(MODEL_DEFAULTS))
    if unknown:
        raise ValueError(f"tabular model: unknown option {unknown[0]!r}; valid: {', '.join(MODEL_DEFAULTS)}")
    sizes = embedding_sizes(processor.cardinalities, processor.all_cat_names, opts["emb_sizes"])
    out = processor.n_classes if processor.task == "classification" else 1
    if out is None:
        raise ValueError("tabular model: the processor has no target (y_name=None): how many outputs?")
    dropout = opts["dropout"]
    return tabular_model(
        processor.cardinalities,
        len(processor.cont_names),
        out,
        list(opts["layers"]),
        emb_sizes=sizes,
        dropout=dropout if isinstance(dropout, (int, float)) else list(dropout),
        emb_dropout=float(opts["emb_dropout"]),
        bn_cont=bool(opts["bn_cont"]),
        use_bn=bool(opts["use_bn"]),
        bn_final=bool(opts["bn_final"]),
        rng=rng,
    )


class TabularLearner:
    """A fitted `TabularProcessor` and the model reading its output.

    Parameters
    ----------
    processor : TabularProcessor
        Fitted on the training rows.
    model : Sequential
        Reads ``processor.transform(rows)``; `model_from_config` builds one.
    options : mapping
        The model's options (`MODEL_DEFAULTS` keys), saved so that `load_learner` rebuilds it.
    """

    def __init__(
        self, processor: TabularProcessor, model: Sequential, options: Mapping[str, Any] | None = None
    ) -> None:
        if not processor.fitted:
            raise ValueError("TabularLearner: the processor is not fitted")
        self.processor = processor
        self.model = model
        self.options = {**MODEL_DEFAULTS, **dict(options or {})}

    # ------------------------------------------------------------------ data
    def encode(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """Raw rows -> the model's input ``(x_cat, x_cont)``."""
        return self.processor.transform(rows)

    def dataset(self, rows: Rows) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Raw rows with targets -> ``((x_cat, x_cont), y)``."""
        return self.processor.transform(rows), self.processor.transform_y(rows)

    # ------------------------------------------------------------------ prediction
    def scores(self, rows: Rows, batch_size: int = 1024) -> np.ndarray:
        """The model's raw outputs for the rows, (N, out_features), in eval mode."""
        x_cat, x_cont = self.encode(rows)
        was_training = self.model.training
        self.model.eval()
        try:
            parts = [
                self.model.forward((x_cat[i : i + batch_size], x_cont[i : i + batch_size].astype(self.model.dtype)))
                for i in range(0, len(x_cat), batch_size)
            ]
        finally:
            self.model.train(was_training)
        return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=self.model.dtype)

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Class probabilities (N, C) (softmax of the scores), columns in ``processor.y_classes`` order."""
        if self.processor.task != "classification":
            raise ValueError("TabularLearner.predict_proba: a regression model has no class probabilities")
        s = self.scores(rows).astype(np.float64)
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, rows: Rows) -> np.ndarray:
        """Predicted labels (N,) (class names, object dtype), or values (N,) for regression."""
        if self.processor.task == "regression":
            return self.scores(rows)[:, 0]
        return self.processor.decode_y(np.argmax(self.scores(rows), axis=1))

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: Rows,
        valid: Rows | None = None,
        epochs: int = 1,
        lr: float = 1e-2,
        *,
        batch_size: int = 64,
        weight_decay: float = 1e-2,
        rng: np.random.Generator | None = None,
        progress: bool = False,
    ) -> Any:
        """Train on raw rows with AdamW and a one-cycle schedule (fastai's ``fit_one_cycle``).

        AdamW with betas (0.9, 0.99), eps 1e-5 and decoupled weight decay `weight_decay`; the
        learning rate rises to `lr` over the first 25% of the steps and anneals (cosine) to
        ``lr / 1e5``, Adam's beta1 moving 0.95 -> 0.85 -> 0.95: fastai's defaults.
        Classification minimizes softmax cross-entropy, regression the mean squared error.

        Returns
        -------
        History
            The `Trainer`'s per-epoch logs (loss, accuracy; val_ values with `valid`).
        """
        from gradwise.data.loader import DataLoader
        from gradwise.losses import MSE, SoftmaxCrossEntropy
        from gradwise.optim import AdamW
        from gradwise.optim.schedules import one_cycle
        from gradwise.random import resolve
        from gradwise.training import Trainer
        from gradwise.training.callbacks import CycleMomentum
        from gradwise.training.metrics import accuracy, rmse

        rng = resolve(rng)
        x, y = self.dataset(train)
        loader = DataLoader(x, y, batch_size=batch_size, shuffle=True, rng=rng, drop_last=len(y) > batch_size)
        val_loader = None
        if valid is not None:
            xv, yv = self.dataset(valid)
            val_loader = DataLoader(xv, yv, batch_size=1024)
        # fastai ends at lr_max / div_final = lr / 1e5; torch's (and gradwise's) final_div_factor divides
        # the start, lr / 25: 1e5 / 25 = 4e3.
        schedule = one_cycle(max_lr=lr, total_steps=epochs * len(loader), pct_start=0.25, final_div_factor=4e3)
        optimizer = AdamW(self.model.parameters(), lr=schedule, betas=(0.9, 0.99), eps=1e-5, weight_decay=weight_decay)
        classify = self.processor.task == "classification"
        trainer = Trainer(
            self.model,
            SoftmaxCrossEntropy() if classify else MSE(),
            optimizer,
            metrics=[accuracy] if classify else [rmse],
            callbacks=[CycleMomentum(schedule)],
            progress=progress,
        )
        return trainer.fit(loader, val_loader, epochs=epochs)

    def accuracy(self, rows: Rows) -> float:
        """The fraction of rows whose predicted label is their target."""
        y = self.processor.transform_y(rows)
        return float(np.mean(np.argmax(self.scores(rows), axis=1) == y))

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tabular.json`` (processor and model options) and ``weights.safetensors`` into folder `path`."""
        from gradwise.io import save

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {"processor": self.processor.to_dict(), "model": _jsonable_options(self.options)}
        save(self.model, folder / WEIGHTS_FILE)
        atomic_write_bytes(folder / LEARNER_FILE, (json.dumps(state, indent=1) + "\n").encode("utf-8"))
        return folder

    def __repr__(self) -> str:
        return f"TabularLearner({self.processor!r}, {self.model.num_parameters():,} parameters)"


def _jsonable_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(options)
    out["layers"] = [int(h) for h in out["layers"]]
    out["emb_sizes"] = {str(k): int(v) for k, v in dict(out["emb_sizes"]).items()}
    d = out["dropout"]
    out["dropout"] = float(d) if isinstance(d, (int, float)) else [float(p) for p in d]
    return out


def tabular_learner(
    processor_or_columns: TabularProcessor | Mapping[str, Any],
    layers: Sequence[int] = (200, 100),
    *,
    train: Rows | None = None,
    dropout: float | Sequence[float] = 0.0,
    emb_dropout: float = 0.0,
    emb_sizes: Mapping[str, int] | None = None,
    bn_cont: bool = True,
    use_bn: bool = True,
    bn_final: bool = False,
    rng: np.random.Generator | None = None,
) -> TabularLearner:
    """A `TabularLearner` in one line.

    Parameters
    ----------
    processor_or_columns : TabularProcessor or mapping
        A fitted processor; or an unfitted one, or the column description
        ``{"cat_names": [...], "cont_names": [...], "y_name": ..., "task": ...}``, fitted here on `train`.
    layers, dropout, emb_dropout, emb_sizes, bn_cont, use_bn, bn_final
        The model's options (`tabular_model`; `emb_sizes` maps a column name to its width).
    train : Table or rows, optional
        The training rows to fit the processor on (needed unless it is fitted).
    rng : np.random.Generator, optional
        Initial weights.

    Examples
    --------
    >>> train, test = gw.data.load_adult()
    >>> learn = gw.tabular.tabular_learner(
    ...     {"cat_names": ADULT_CAT_NAMES, "cont_names": ADULT_CONT_NAMES, "y_name": "income"},
    ...     layers=[200, 100], train=train)
    >>> learn.fit(train, epochs=3)
    >>> learn.predict(test.head(3))        # array(['<=50K', '<=50K', '>50K'], dtype=object)
    """
    proc = processor_or_columns
    if isinstance(proc, Mapping):
        cols = dict(proc)
        allowed = {"cat_names", "cont_names", "y_name", "task", "fill_missing", "normalize"}
        unknown = sorted(set(cols) - allowed)
        if unknown:
            raise ValueError(
                f"tabular_learner: unknown column-description key {unknown[0]!r}; valid: {sorted(allowed)}"
            )
        proc = TabularProcessor(
            cols.get("cat_names", ()), cols.get("cont_names", ()), cols.get("y_name"),
            **{k: cols[k] for k in ("task", "fill_missing", "normalize") if k in cols},
        )  # fmt: skip
    if not isinstance(proc, TabularProcessor):
        raise TypeError(
            f"tabular_learner: expected a TabularProcessor or a column description, got {type(proc).__name__}"
        )
    if not proc.fitted:
        if train is None:
            raise ValueError("tabular_learner: the processor is not fitted; pass train= (the training rows) to fit it")
        proc.fit(train)
    options = {
        "layers": list(layers), "dropout": dropout, "emb_dropout": emb_dropout, "emb_sizes": dict(emb_sizes or {}),
        "bn_cont": bn_cont, "use_bn": use_bn, "bn_final": bn_final,
    }  # fmt: skip
    return TabularLearner(proc, model_from_config(proc, options, rng), options)


def load_learner(path: str | os.PathLike[str], checkpoint: str = "last") -> TabularLearner:
    """Read a `TabularLearner` back, ready to `predict`.

    Parameters
    ----------
    path : path-like
        A folder written by `TabularLearner.save` (``tabular.json``, ``weights.safetensors``), or
        a ``gradwise train`` run directory of a ``[model] learner = "tabular"`` config
        (``processor.json``, ``config.toml``, ``checkpoints/<checkpoint>.safetensors``).
    checkpoint : str
        For a run directory: ``"last"`` (the final weights, those the run's test metrics were
        computed with) or ``"best"`` (lowest validation loss).

    Raises
    ------
    FileNotFoundError
        If the folder holds neither form. ValueError for a damaged or foreign file (named).
    """
    from gradwise.io import load

    folder = Path(path)
    if (folder / LEARNER_FILE).is_file():
        state = json.loads((folder / LEARNER_FILE).read_text(encoding="utf-8"))
        proc = TabularProcessor.from_dict(state["processor"])
        options = state["model"]
        weights = folder / WEIGHTS_FILE
    elif (folder / PROCESSOR_FILE).is_file() and (folder / "config.toml").is_file():
        proc = TabularProcessor.load(folder / PROCESSOR_FILE)
        model_cfg = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8")).get("model", {})
        if model_cfg.get("learner") != "tabular":
            raise ValueError(
                f"{folder / 'config.toml'}: [model] learner is {model_cfg.get('learner')!r}, not 'tabular'"
            )
        options = {k: model_cfg[k] for k in MODEL_DEFAULTS if k in model_cfg}
        weights = folder / "checkpoints" / f"{checkpoint}.safetensors"
    else:
        raise FileNotFoundError(
            f"{folder}: neither a saved TabularLearner ({LEARNER_FILE}) nor a tabular run directory "
            f"({PROCESSOR_FILE} and config.toml)"
        )
    model = model_from_config(proc, options)
    load(weights, model)
    model.eval()
    return TabularLearner(proc, model, options)
