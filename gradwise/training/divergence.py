"""`TrainingDiverged`: a NaN or infinite training loss, with a message that says what to try."""

from __future__ import annotations

from typing import Any

__all__ = ["TrainingDiverged", "diverged"]


class TrainingDiverged(FloatingPointError):
    """A training batch produced a NaN or infinite loss.

    Attributes
    ----------
    epoch, batch : int
        0-based indices of the epoch and of the batch within it (the message counts from 1).
    loss : float
        The non-finite loss value.
    """

    def __init__(self, message: str, epoch: int, batch: int, loss: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.loss = loss
        self.handled = False  # True when a callback's on_train_diverged asked for a clean stop


def diverged(
    epoch: int, total: int, batch: int, n_batches: int | None, value: float, lr: float, run_dir: Any = None
) -> TrainingDiverged:
    """The error for a non-finite loss at (`epoch`, `batch`), naming where and what to try."""
    where = f"epoch {epoch + 1}/{total}, batch {batch + 1}/{n_batches if n_batches is not None else '?'}"
    hint = f"lower the learning rate (it is {lr:g}; try 3-10x smaller)"
    kept = ""
    if run_dir is not None:
        kept = f" The best checkpoint in {str(run_dir.path)!r} was left untouched."
    message = (
        f"training diverged at {where}: the loss is {value}. To fix it, {hint}; also check the "
        f"inputs are standardized and the loss matches the model's output.{kept}"
    )
    return TrainingDiverged(message, epoch=epoch, batch=batch, loss=value)
