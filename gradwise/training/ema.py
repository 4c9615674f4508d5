"""`EMA`: an exponential moving average of the weights (re-exported by callbacks.py)."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.training.callback_base import (
    Callback,
    Logs,
    _count,
    _StepWatch,
)

if TYPE_CHECKING:
    pass


class EMA(Callback):
    r"""Exponential moving average of the weights (Polyak averaging), evaluated in their place.

    After every optimizer step :math:`t > t_0` (`start_step`; with gradient accumulation, only
    the batches that end with an update count), each parameter's shadow becomes

    .. math:: \bar\theta_t = \beta\,\bar\theta_{t-1} + (1 - \beta)\,\theta_t

    with :math:`\beta` = `decay` (Polyak & Juditsky, 1992; as ``tf.train.ExponentialMovingAverage``
    and ``torch.optim.swa_utils.get_ema_multi_avg_fn``). Until step :math:`t_0` the shadow
    follows the weights exactly, so averaging starts from the weights of step :math:`t_0`.

    With ``bias_correction=True`` the shadow starts at zero instead and the weights used are
    :math:`\bar\theta_n / (1 - \beta^n)` after :math:`n` averaged steps (Kingma & Ba, 2015, sec.
    7.2: the Adam-style correction); early on this is a plain average of the steps so far rather
    than an average leaning on the starting weights.

    Only parameters are averaged: buffers (BatchNorm running statistics) already are running
    averages and stay as they are (torch's ``AveragedModel(use_buffers=False)``).

    ``use_for_eval=True`` swaps the averaged weights in for every `Trainer.evaluate` (so
    ``val_*`` metrics are the EMA's) and swaps the raw ones back after. Elsewhere use `apply` /
    `restore`, or ``with ema.averaged(): ...``. The trainer's best/last checkpoints hold the raw
    weights; save the averaged ones with ``with ema.averaged(): gw.io.save(model, path)``.

    Parameters
    ----------
    decay : float in [0, 1), default 0.999
    use_for_eval : bool, default True
    start_step : int, default 0
    bias_correction : bool, default False

    Attributes
    ----------
    shadow : dict of str to np.ndarray
        The average, by parameter name, in each parameter's dtype.
    step, num_updates : int
        Optimizer steps seen, and steps averaged.
    """

    def __init__(
        self, decay: float = 0.999, use_for_eval: bool = True, start_step: int = 0, bias_correction: bool = False
    ) -> None:
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay < 1:
            raise ValueError(f"{decay=} must be in [0, 1)")
        self.decay: float = float(decay)
        self.use_for_eval: bool = bool(use_for_eval)
        self.start_step: int = _count("start_step", start_step)
        self.bias_correction: bool = bool(bias_correction)
        self.shadow: dict[str, np.ndarray] = {}
        self.step: int = 0
        self.num_updates: int = 0
        self._backup: dict[str, np.ndarray] | None = None
        self._swapped_for_test: bool = False
        self._scratch: np.ndarray = np.empty(0)
        self._watch: _StepWatch = _StepWatch()

    def _params(self) -> dict[str, Any]:
        return dict(self.model.named_parameters())

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._watch.last = getattr(self.trainer, "global_step", None)
        params = self._params()
        if not self.shadow:
            self.shadow = {n: p.data.copy() for n, p in params.items()}
        elif set(self.shadow) != set(params):
            raise ValueError(
                f"EMA: the averaged weights are for parameters {sorted(self.shadow)}, the model has {sorted(params)}"
            )

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._backup is not None:
            raise RuntimeError("EMA: the averaged weights are applied during training; call restore() first")
        if not self._watch.stepped(self.trainer):
            return  # gradient accumulation: no update after this batch
        self.step += 1
        params = self._params()
        if self.step <= self.start_step:
            for n, p in params.items():
                self.shadow[n][...] = p.data
            return
        if self.num_updates == 0 and self.bias_correction:
            for s in self.shadow.values():
                s.fill(0)
        self.num_updates += 1
        d = self.decay
        for n, p in params.items():
            s = self.shadow[n]
            if self._scratch.size < s.size or self._scratch.dtype != s.dtype:
                self._scratch = np.empty(max(s.size, self._scratch.size), dtype=s.dtype)
            tmp = self._scratch[: s.size].reshape(s.shape)
            np.multiply(p.data, 1.0 - d, out=tmp)
            s *= d
            s += tmp

    def averaged_weights(self) -> dict[str, np.ndarray]:
        """The weights `apply` writes: the shadow, bias-corrected if asked (copies)."""
        if self.bias_correction and self.num_updates > 0:
            c = 1.0 - self.decay**self.num_updates
            return {n: (s / c).astype(s.dtype) for n, s in self.shadow.items()}
        return {n: s.copy() for n, s in self.shadow.items()}

    def apply(self) -> None:
        """Put the averaged weights into the model (in place), keeping the raw ones for `restore`."""
        if self._backup is not None:
            raise RuntimeError("EMA.apply: the averaged weights are already applied")
        if not self.shadow:
            raise RuntimeError("EMA.apply: nothing averaged yet (train first, or load_state_dict)")
        params = self._params()
        self._backup = {n: p.data.copy() for n, p in params.items()}
        for n, w in self.averaged_weights().items():
            params[n].data[...] = w

    def restore(self) -> None:
        """Put back the raw weights that `apply` replaced."""
        if self._backup is None:
            raise RuntimeError("EMA.restore: the averaged weights are not applied")
        for n, p in self._params().items():
            p.data[...] = self._backup[n]
        self._backup = None

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """``with ema.averaged(): ...`` runs the block with the averaged weights in the model."""
        self.apply()
        try:
            yield
        finally:
            self.restore()

    def on_test_begin(self, logs: Logs | None = None) -> None:
        if self.use_for_eval and self.shadow and self._backup is None:
            self.apply()
            self._swapped_for_test = True

    def on_test_end(self, logs: Logs | None = None) -> None:
        if self._swapped_for_test:
            self._swapped_for_test = False
            self.restore()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "num_updates": self.num_updates,
            "shadow": {n: s.copy() for n, s in self.shadow.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = int(state["step"])
        self.num_updates = int(state["num_updates"])
        self.shadow = {n: np.array(s, copy=True) for n, s in state["shadow"].items()}

    def __repr__(self) -> str:
        return (
            f"EMA(decay={self.decay}, use_for_eval={self.use_for_eval}, start_step={self.start_step}, "
            f"bias_correction={self.bias_correction})"
        )


# -------------------------------------------------------------------------------- CSVLogger
