"""The ensemble model: average the predictions of several models, and measure what that gains.

`Ensemble` is a `Layer` over its members (its outputs combined by `combine`) and `ensemble_gain`
compares it with its members on one metric. How to obtain members (one per seed, or snapshots of
one run) is in ``members.py``; the package docstring has the references.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.core import Layer
from gradwise.training.callback_base import infer_mode

if TYPE_CHECKING:
    from gradwise.losses import Loss

__all__ = ["Ensemble", "combine", "ensemble_gain"]

Metric = Callable[[np.ndarray, np.ndarray], float]
_MODES = ("mean_probs", "mean_scores")


def _cast(x: Any, dtype: np.dtype) -> Any:
    """A floating input in the model's dtype (integer indices and tuples of them left alone)."""
    if isinstance(x, tuple):
        return tuple(_cast(v, dtype) for v in x)
    if isinstance(x, np.ndarray) and x.dtype != dtype and np.issubdtype(x.dtype, np.floating):
        return x.astype(dtype)
    return x


def _binary(scores: np.ndarray) -> bool:
    """(N,) or (N, 1) outputs are binary logits; (N, C) with C > 1 are class scores."""
    return scores.ndim == 1 or scores.shape[-1] == 1


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """softmax over the last axis, or sigmoid for binary logits; float64."""
    s = np.asarray(scores, dtype=np.float64)
    if _binary(s):
        return np.exp(-np.logaddexp(0.0, -s))  # sigmoid without overflow
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def combine(outputs: Sequence[np.ndarray], weights: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average of the members' outputs: ``(scores, predictions)``.

    Parameters
    ----------
    outputs : sequence of (N, ...) arrays
        One per member, the same shape.
    weights : (M,) array
        Non-negative, summing to 1.
    mode : {"mean_probs", "mean_scores"}
        ``"mean_probs"``: p = sum_m w_m softmax(s_m) (sigmoid for (N,) or (N, 1) binary logits);
        the predictions are p and the scores are log p (logit p for binary outputs), so that
        softmax, argmax and the cross-entropy of the scores are those of p.
        ``"mean_scores"``: the weighted mean of the raw outputs, both scores and predictions
        (regression, or averaging logits).

    Returns
    -------
    scores, predictions : arrays of the outputs' shape, in the first output's dtype
    """
    dtype = np.asarray(outputs[0]).dtype
    if mode == "mean_scores":
        mean = sum(w * np.asarray(o, dtype=np.float64) for w, o in zip(weights, outputs))
        mean = np.asarray(mean).astype(dtype)
        return mean, mean
    p = sum(w * _probabilities(o) for w, o in zip(weights, outputs))
    p = np.asarray(p)
    tiny = np.finfo(np.float64).tiny
    if _binary(np.asarray(outputs[0])):
        q = np.clip(p, tiny, 1 - np.finfo(np.float64).eps)
        scores = np.log(q) - np.log1p(-q)
    else:
        scores = np.log(np.maximum(p, tiny))
    return scores.astype(dtype), p.astype(dtype)


class Ensemble(Layer):
    """The weighted average of several models' predictions.

    Parameters
    ----------
    models : sequence of Layer
        The members; each maps the same input to outputs of the same shape. They are registered
        as children ``"0"``, ``"1"``, ... (so ``state_dict()`` names are ``0.0.weight``, ...).
    weights : sequence of float, optional
        Non-negative member weights, normalized to sum to 1; equal weights by default.
    mode : {"mean_probs", "mean_scores"}
        ``"mean_probs"`` (classification) averages the members' softmax probabilities (sigmoid
        probabilities for (N,) or (N, 1) binary logits); ``"mean_scores"`` averages the raw
        outputs (regression).

    Shapes
    ------
    x : whatever the members take, (N, ...) -> scores : the members' output shape, e.g. (N, C).

    Notes
    -----
    `forward` returns **scores**: for ``"mean_probs"`` the log of the averaged probabilities
    (their logit for binary outputs). They are valid logits: softmax gives back the averaged
    probabilities, argmax gives the ensemble's class, and `SoftmaxCrossEntropy` or any metric of
    `gradwise.metrics` computed on them is the ensemble's. `predict` returns the probabilities
    themselves. An ensemble is not trained as a whole (train its members), so `backward` raises.
    """

    def __init__(
        self, models: Sequence[Layer], weights: Sequence[float] | None = None, mode: str = "mean_probs"
    ) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("Ensemble: needs at least one model")
        for i, m in enumerate(models):
            if not isinstance(m, Layer):
                raise TypeError(f"Ensemble: models[{i}] is {type(m).__name__}, not a gradwise Layer")
        if mode not in _MODES:
            raise ValueError(f"Ensemble: {mode=} must be one of {_MODES}")
        self.mode = mode
        self.weights = _normalized_weights(weights, len(models))
        for i, m in enumerate(models):
            setattr(self, str(i), m)

    @classmethod
    def from_state_dicts(
        cls,
        template: Layer,
        state_dicts: Iterable[Mapping[str, np.ndarray]],
        weights: Sequence[float] | None = None,
        mode: str = "mean_probs",
    ) -> Ensemble:
        """One member per state dict: a deep copy of `template` loaded with it (snapshots of a run).

        Parameters
        ----------
        template : Layer
            The architecture; left unchanged.
        state_dicts : iterable of mapping
            Full state dicts of `template`'s architecture (`Layer.load_state_dict`, strict).
        weights, mode
            As in the constructor.
        """
        members = []
        for state in state_dicts:
            member = copy.deepcopy(template)
            member.load_state_dict(state)
            members.append(member)
        return cls(members, weights=weights, mode=mode)

    @property
    def models(self) -> list[Layer]:
        return self.children()

    def __len__(self) -> int:
        return len(self.children())

    def __getitem__(self, i: int) -> Layer:
        return self.models[i]

    # ------------------------------------------------------------------ computation
    def member_outputs(self, x: Any) -> list[np.ndarray]:
        """Each member's raw output for `x` (in the members' current mode)."""
        outs = [np.asarray(m.forward(_cast(x, m.dtype))) for m in self.models]
        shapes = {o.shape for o in outs}
        if len(shapes) > 1:
            raise ValueError(f"Ensemble: the members' outputs differ in shape: {[o.shape for o in outs]}")
        return outs

    def forward(self, x: Any) -> np.ndarray:
        """Ensemble scores for `x` (see the class notes): log mean probabilities, or mean outputs."""
        return combine(self.member_outputs(x), self.weights, self.mode)[0]

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Ensemble is not trained as a whole; train each member, then build the Ensemble")

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Averaged predictions in evaluation mode (the previous mode is restored).

        Parameters
        ----------
        x : array_like (N, ...), tuple of arrays, or an unshuffled DataLoader
        batch_size : int
            Samples per forward pass (bounds the memory, not the result).

        Returns
        -------
        np.ndarray
            ``"mean_probs"``: (N, C) averaged probabilities ((N,) or (N, 1) probabilities of
            class 1 for binary logits); ``"mean_scores"``: the averaged outputs.
        """
        return self._run(_loader(x, batch_size, "Ensemble.predict"))[1]

    def evaluate(
        self, loader: Iterable[Any], metrics: Sequence[Metric] = (), loss: Loss | None = None
    ) -> dict[str, float]:
        """The ensemble's metrics (and loss) over a whole loader, in evaluation mode.

        Parameters
        ----------
        loader : iterable of ``(xb, yb)``
        metrics : sequence of callables ``metric(scores, y) -> float``
            Computed once on the scores of the whole loader (exact, not a mean of batches).
        loss : Loss, optional
            E.g. `SoftmaxCrossEntropy`: with ``"mean_probs"`` it gives the negative log-likelihood
            of the averaged probabilities. Averaged over samples.

        Returns
        -------
        dict
            ``{"loss": ..., <metric name>: ...}`` (``loss`` only if given).
        """
        scores, _, y = self._run(loader, with_targets=True)
        results: dict[str, float] = {}
        if loss is not None:
            results["loss"] = float(loss.forward(scores, y))
        for metric in metrics:
            results[getattr(metric, "__name__", "metric")] = float(metric(scores, y))
        return results

    def _run(self, loader: Iterable[Any], with_targets: bool = False) -> Any:
        modes = [m.training for _, m in self.named_modules()]
        self.eval()
        try:
            score_parts, pred_parts, ys = [], [], []
            for xb, yb in loader:
                s, p = combine(self.member_outputs(xb), self.weights, self.mode)
                score_parts.append(s)
                pred_parts.append(p)
                if with_targets:
                    if yb is None:
                        raise ValueError("Ensemble.evaluate: the loader has no targets (it was built with y=None)")
                    ys.append(np.asarray(yb))
        finally:
            for (_, m), mode in zip(self.named_modules(), modes):
                object.__setattr__(m, "training", mode)
        if not score_parts:
            raise ValueError("Ensemble: the loader yielded no batch")
        scores, preds = np.concatenate(score_parts), np.concatenate(pred_parts)
        return (scores, preds, np.concatenate(ys)) if with_targets else (scores, preds)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, weights={np.round(self.weights, 4).tolist()}"


def _normalized_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"Ensemble: {len(w)} weights for {n} models")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"Ensemble: weights={w.tolist()} must be finite, >= 0 and not all 0")
    return w / w.sum()


def _loader(x: Any, batch_size: int, owner: str) -> Any:
    from gradwise.data.loader import DataLoader

    if isinstance(x, DataLoader):
        if x.shuffle:
            raise ValueError(f"{owner}: the loader shuffles, so outputs would not line up with its x")
        return x
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{owner}: {batch_size=} must be an integer >= 1")
    return DataLoader(x, None, batch_size=int(batch_size), dtype=None)


# ---------------------------------------------------------------------------------------- the gain


def ensemble_gain(
    models: Sequence[Layer] | Ensemble,
    loader: Iterable[Any],
    metric: Metric,
    *,
    mode: str = "mean_probs",
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """How much better the ensemble is than its members, on one metric.

    Each member's outputs are computed once; the ensemble is combined from them.

    Parameters
    ----------
    models : sequence of Layer, or an Ensemble (its weights and mode are then used)
    loader : iterable of ``(xb, yb)``
        Evaluation data (a test or validation loader).
    metric : callable ``metric(scores, y) -> float``
        E.g. `gradwise.metrics.accuracy`; larger-is-better unless its name says otherwise
        (``loss``, ``rmse``, ``mae``, ``error``, ... as in `EarlyStopping`'s ``mode="auto"``).
    mode, weights
        As in `Ensemble` (ignored when `models` is an Ensemble).

    Returns
    -------
    dict
        ``individual``: the metric of each member; ``mean_individual``: their mean;
        ``best_individual``: the best of them; ``ensemble``: the ensemble's metric;
        ``gain``: the improvement of the ensemble over the mean member, positive when the
        ensemble is better (``ensemble - mean`` for a larger-is-better metric, ``mean -
        ensemble`` otherwise); ``metric``: its name; ``mode``.
    """
    ens = models if isinstance(models, Ensemble) else Ensemble(models, weights=weights, mode=mode)
    modes = [m.training for _, m in ens.named_modules()]
    ens.eval()
    try:
        per_member: list[list[np.ndarray]] = [[] for _ in ens.models]
        ys = []
        for xb, yb in loader:
            for bucket, out in zip(per_member, ens.member_outputs(xb)):
                bucket.append(out)
            ys.append(np.asarray(yb))
    finally:
        for (_, m), was in zip(ens.named_modules(), modes):
            object.__setattr__(m, "training", was)
    if not ys:
        raise ValueError("ensemble_gain: the loader yielded no batch")
    y = np.concatenate(ys)
    outputs = [np.concatenate(parts) for parts in per_member]
    individual = [float(metric(o, y)) for o in outputs]
    ensemble_value = float(metric(combine(outputs, ens.weights, ens.mode)[0], y))
    name = getattr(metric, "__name__", "metric")
    larger_is_better = infer_mode(name) == "max"
    mean = float(np.mean(individual))
    return {
        "metric": name,
        "mode": ens.mode,
        "individual": individual,
        "mean_individual": mean,
        "best_individual": max(individual) if larger_is_better else min(individual),
        "ensemble": ensemble_value,
        "gain": ensemble_value - mean if larger_is_better else mean - ensemble_value,
    }
