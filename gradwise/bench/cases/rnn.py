"""Recurrent cases: the MNIST-1D bidirectional GRU epoch and one LSTM training step."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.bench.context import Context
from gradwise.bench.epochs import adam_pair, epoch_case, mnist1d_train, to_torch
from gradwise.bench.report import CaseResult

STEPS, HIDDEN, CLASSES = 40, 6, 10
# The LSTM step: batch 64 of 50 steps of 32 features, 128 hidden units, the last step classified.
LSTM_BATCH, LSTM_T, LSTM_IN, LSTM_HIDDEN = 64, 50, 32, 128


def gru(seed: int) -> Any:
    """The MNIST-1D paper's GRU model: one value per step, bidirectional GRU(6), all outputs flattened."""
    from gradwise.core import Sequential
    from gradwise.layers import GRU, Flatten, Linear, Reshape

    rng = np.random.default_rng(seed + 1)
    return Sequential(Reshape((STEPS, 1)), GRU(1, HIDDEN, batch_first=True, bidirectional=True, rng=rng),
                      Flatten(), Linear(2 * HIDDEN * STEPS, CLASSES, rng=rng))


def gru_torch(torch: Any, model: Any) -> Any:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.GRU(1, HIDDEN, batch_first=True, bidirectional=True)
            self.linear = torch.nn.Linear(2 * HIDDEN * STEPS, CLASSES)

        def forward(self, xb: Any) -> Any:
            out, _ = self.rnn(xb.view(xb.shape[0], STEPS, 1))
            return self.linear(out.reshape(out.shape[0], -1))

    # gradwise names the children by index: "1.weight_ih_l0" (GRU), "3.weight" (Linear).
    return to_torch(model, Net(), torch, lambda k: ("rnn." if k.startswith("1.") else "linear.") + k.split(".", 1)[1])


def gru_mnist1d(ctx: Context) -> CaseResult:
    x, y = mnist1d_train(ctx)
    torch = ctx.torch
    make_opt, make_torch_opt = adam_pair(ctx, 1e-2)
    return epoch_case(
        ctx, "gru-mnist1d", f"MNIST-1D bidirectional GRU({HIDDEN}) epoch, Linear 480->10, batch 100, Adam lr 1e-2",
        x, y, 100, lambda: gru(ctx.seed), None if torch is None else (lambda m: gru_torch(torch, m)),
        make_opt, make_torch_opt,
    )


def lstm(seed: int) -> Any:
    from gradwise.core import Sequential
    from gradwise.layers import LSTM, Linear, TakeLast

    rng = np.random.default_rng(seed + 1)
    return Sequential(LSTM(LSTM_IN, LSTM_HIDDEN, batch_first=True, rng=rng), TakeLast(),
                      Linear(LSTM_HIDDEN, CLASSES, rng=rng))


def lstm_torch(torch: Any, model: Any) -> Any:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(LSTM_IN, LSTM_HIDDEN, batch_first=True)
            self.linear = torch.nn.Linear(LSTM_HIDDEN, CLASSES)

        def forward(self, xb: Any) -> Any:
            out, _ = self.lstm(xb)
            return self.linear(out[:, -1])

    return to_torch(model, Net(), torch, lambda k: ("lstm." if k.startswith("0.") else "linear.") + k.split(".", 1)[1])


def lstm_step(ctx: Context) -> CaseResult:
    """One training step (forward, loss, backward, Adam) of an LSTM on a batch of sequences.

    Timed as runs of `steps` steps over fixed random batches and reported per step.
    """
    steps = ctx.pick(2, 20)
    rng = np.random.default_rng(ctx.seed)
    x = rng.standard_normal((steps * LSTM_BATCH, LSTM_T, LSTM_IN), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=len(x), dtype=np.int64)
    torch = ctx.torch
    make_opt, make_torch_opt = adam_pair(ctx, 1e-3)
    result = epoch_case(
        ctx, "lstm-step", f"LSTM({LSTM_IN}, {LSTM_HIDDEN}) training step on a batch of {LSTM_BATCH} x {LSTM_T} steps, "
        "last step -> Linear 128->10, Adam lr 1e-3",
        x, y, LSTM_BATCH, lambda: lstm(ctx.seed), None if torch is None else (lambda m: lstm_torch(torch, m)),
        make_opt, make_torch_opt, warmup_batches=1,
    )
    # Per step, not per run of `steps` steps.
    result.unit = "ms/step"
    result.rows = {label: [1e3 * v / steps for v in values] for label, values in result.rows.items()}
    result.phases_of = f"hand loop, median run of {steps} steps"
    return result
