"""The cases of `gradwise bench`, in the order they run: name -> (function, what it measures).

Each function takes a `Context` and returns one `CaseResult`. Modules by family: `mlp`, `conv`,
`rnn`, `optim`, `process`, `collab`. They import NumPy at module level, so this registry imports them
lazily, inside `load`, after the worker has checked its thread settings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# name -> (module, function, description)
CASES: dict[str, tuple[str, str, str]] = {
    "mlp-b128": ("mlp", "mlp_b128", "MLP 784-512-512-10 training epoch at batch 128, Adam; GFLOP/s vs sgemm"),
    "mlp-b32": ("mlp", "mlp_b32", "the same MLP epoch at batch 32"),
    "sklearn-mlp": ("mlp", "sklearn_mlp", "the same MLP epoch vs scikit-learn's MLPClassifier (batch 128)"),
    "cnn-mnist1d": ("conv", "cnn_mnist1d", "MNIST-1D CNN (the default config's model) training epoch"),
    "lenet": ("conv", "lenet_epoch", "LeNet-style Conv2d training epoch on 28x28, batch 64"),
    "gru-mnist1d": ("rnn", "gru_mnist1d", "MNIST-1D bidirectional GRU training epoch"),
    "lstm-step": ("rnn", "lstm_step", "one LSTM training step (batch 64 x 50 steps, 128 hidden)"),
    "optim-sgd": ("optim", "optim_sgd", "SGD step() on 10M parameters"),
    "optim-momentum": ("optim", "optim_momentum", "SGD momentum 0.9 step() on 10M parameters"),
    "optim-adam": ("optim", "optim_adam", "Adam step() on 10M parameters"),
    "infer-b1": ("mlp", "infer_b1", "MLP inference latency, batch 1"),
    "infer-b256": ("mlp", "infer_b256", "MLP inference latency, batch 256"),
    "import": ("process", "import_time", "`import gradwise` time (best of fresh interpreters) vs numpy"),
    "peak-rss": ("process", "peak_rss", "peak RSS of a training run, gradwise vs PyTorch"),
    "default-epochs": ("conv", "default_epochs", "default config: epoch time at epochs 1-5 vs 146-150 (denormals)"),
    "collab-movielens": ("collab", "collab_epoch", "MovieLens dot-product model (EmbeddingDotBias) epoch, batch 64, AdamW"),
}


def load(name: str) -> Callable[[Any], Any]:
    """The function of case `name`."""
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    module, func, _ = CASES[name]
    return getattr(importlib.import_module(f"gradwise.bench.cases.{module}"), func)
