"""MLP cases: training epochs at batch 128 and 32 (with the achieved GFLOP/s), scikit-learn's
MLPClassifier on the same MLP, and inference latency at batch 1 and 256.

The MLP is 784-512-512-10 with ReLU, float32, softmax cross-entropy, Adam (lr 1e-3) on synthetic
data x ~ N(0, 1), y uniform in [0, 10), fixed seed.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from gradwise.bench.context import Context, optional
from gradwise.bench.epochs import TORCH, TRAINER, adam_pair, epoch_case, to_torch
from gradwise.bench.report import CaseResult, Target
from gradwise.bench.timing import time_interleaved

SIZES = (784, 512, 512, 10)


def data(ctx: Context, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(ctx.seed)
    x = rng.standard_normal((n, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=n, dtype=np.int64)
    return x, y


def build(seed: int) -> Any:
    """The gradwise MLP, always with the same initial weights for a given seed."""
    from gradwise.core import Sequential
    from gradwise.layers import Linear, ReLU

    rng = np.random.default_rng(seed + 1)
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
        layers.append(Linear(fan_in, fan_out, rng=rng))
        if i < len(SIZES) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def build_torch(torch: Any, model: Any) -> Any:
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    return to_torch(model, torch.nn.Sequential(*layers), torch)


def first_input_grad_computed(model: Any) -> bool:
    """Whether `model.backward` computes the gradient with respect to the model's input.

    The first Linear's input gradient is a whole matrix product per batch that training never
    needs; a model that skips it when told (``input_grad=False``, as the Trainer calls it) returns
    None from `backward`. Checked on a batch of 2.
    """
    from gradwise.losses import SoftmaxCrossEntropy

    loss = SoftmaxCrossEntropy()
    x = np.zeros((2, SIZES[0]), dtype=np.float32)
    loss.forward(model.forward(x), np.zeros(2, dtype=np.int64))
    grad = model.backward(loss.backward(), input_grad=False)  # what the Trainer asks for
    model.zero_grad()
    return grad is not None


def epoch_flops(n: int, first_input_grad: bool, sizes: tuple[int, ...] = SIZES) -> float:
    """FLOPs of the matrix products of one epoch of `n` samples through the MLP `sizes`.

    Forward and weight gradients: 2 n (in x out) each per layer; input gradients: the same for
    every layer but the first, and for the first too when `first_input_grad` (a product no one
    needs, see `first_input_grad_computed`). Element-wise work (bias, ReLU, softmax, Adam) is
    not counted: it is memory-bound, not FLOP-bound.
    """
    macs = [a * b for a, b in itertools.pairwise(sizes)]
    input_grads = sum(macs) if first_input_grad else sum(macs[1:])
    return 2.0 * n * (2 * sum(macs) + input_grads)


def mlp_epoch(ctx: Context, bs: int, n: int, target: float, gemm_target: float | None) -> CaseResult:
    x, y = data(ctx, n)
    make_opt, make_torch_opt = adam_pair(ctx, 1e-3)
    torch = ctx.torch
    targets = [Target("ratio", "<=", target)]
    if gemm_target is not None:
        targets.append(Target("gemm_fraction", ">=", gemm_target))
    ctx.remeasure_sgemm()
    result = epoch_case(
        ctx, f"mlp-b{bs}", f"MLP {'-'.join(map(str, SIZES))} ReLU epoch, batch {bs}, Adam lr 1e-3",
        x, y, bs, lambda: build(ctx.seed), None if torch is None else (lambda m: build_torch(torch, m)),
        make_opt, make_torch_opt, targets,
    )
    ctx.remeasure_sgemm()
    first = first_input_grad_computed(build(ctx.seed))
    flops = epoch_flops(n, first)
    achieved = flops / result.median_of(TRAINER) / 1e9
    result.extra["GFLOP per epoch (matrix products)"] = flops / 1e9
    result.extra["achieved GFLOP/s (Trainer)"] = achieved
    result.extra["sgemm GFLOP/s (1024^3, best)"] = ctx.sgemm()
    result.extra["gemm_fraction"] = achieved / ctx.sgemm()
    result.notes.append(
        "FLOPs counted as computed: forward, weight gradients, input gradients of every layer "
        + ("including the first (this gradwise computes it)" if first else "but the first (this gradwise skips it)")
    )
    return result


def mlp_b128(ctx: Context) -> CaseResult:
    return mlp_epoch(ctx, 128, ctx.pick(1024, 60_000), 0.7, 0.7)


def mlp_b32(ctx: Context) -> CaseResult:
    return mlp_epoch(ctx, 32, ctx.pick(512, 20_000), 0.75, None)


def sklearn_mlp(ctx: Context) -> CaseResult:
    """One epoch of scikit-learn's MLPClassifier (adam, batch 128, no shuffle, no L2) vs the gradwise Trainer."""
    from gradwise.data.loader import DataLoader
    from gradwise.losses import SoftmaxCrossEntropy
    from gradwise.optim import Adam
    from gradwise.training.trainer import Trainer

    bs, n = 128, ctx.pick(1024, 20_000)
    x, y = data(ctx, n)
    result = CaseResult("sklearn-mlp", f"MLP {'-'.join(map(str, SIZES))} epoch, batch {bs}: gradwise Trainer vs "
                        "scikit-learn MLPClassifier.partial_fit", "s/epoch", ours=TRAINER,
                        targets=[Target("ratio", "<=", 0.6)])
    model = build(ctx.seed)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-3), metrics=(), progress=False)
    loader = DataLoader(x, y, batch_size=bs, shuffle=False)
    warm = DataLoader(x[: 3 * bs], y[: 3 * bs], batch_size=bs, shuffle=False)
    candidates: dict[str, Any] = {TRAINER: lambda: trainer.fit(loader, epochs=1)}
    warmups: dict[str, Any] = {TRAINER: lambda: trainer.fit(warm, epochs=1)}
    neural, _ = optional("sklearn.neural_network")
    if neural is None:
        result.peer_missing = "scikit-learn is not installed; pip install 'gradwise[bench]'"
    else:
        clf = neural.MLPClassifier(hidden_layer_sizes=SIZES[1:-1], activation="relu", solver="adam", alpha=0.0,
                                   batch_size=bs, learning_rate_init=1e-3, shuffle=False, random_state=ctx.seed)
        classes = np.arange(SIZES[-1])
        candidates["scikit-learn"] = lambda: clf.partial_fit(x, y, classes=classes)
        warmups["scikit-learn"] = lambda: clf.partial_fit(x[: 3 * bs], y[: 3 * bs], classes=classes)
        result.peer = "scikit-learn"
        result.notes.append("scikit-learn initializes its own weights (Glorot uniform) and computes in float32 "
                            "(its dtype follows X); partial_fit is one epoch over the data")
    runs = time_interleaved(candidates, ctx.repeats, warmup=warmups)
    for label, rs in runs.items():
        result.add_row(label, [r.seconds for r in rs], [r.disturbed for r in rs])
    result.notes.append(f"{n:,} samples, median of {ctx.repeats} round(s)")
    return result


def inference(ctx: Context, bs: int, target: float | None) -> CaseResult:
    """Forward only, eval mode, on a batch of `bs`: per-call latency (gradwise vs torch.inference_mode)."""
    calls = ctx.pick(20, 2000 if bs == 1 else 200)
    x, _ = data(ctx, bs)
    model = build(ctx.seed).eval()
    result = CaseResult(f"infer-b{bs}", f"MLP {'-'.join(map(str, SIZES))} inference latency, batch {bs}, eval mode",
                        "ms/call", ours="gradwise", targets=[] if target is None else [Target("ratio", "<=", target)])

    def ours() -> None:
        for _ in range(calls):
            model.forward(x)

    candidates: dict[str, Any] = {"gradwise": ours}
    torch = ctx.torch
    if torch is None:
        result.peer_missing = ctx.torch_missing
    else:
        model_t = build_torch(torch, build(ctx.seed)).eval()
        xt = torch.from_numpy(x)

        def theirs() -> None:
            with torch.inference_mode():
                for _ in range(calls):
                    model_t(xt)

        candidates[TORCH] = theirs
        result.peer = TORCH
    runs = time_interleaved(candidates, ctx.repeats * 3, warmup=candidates)
    for label, rs in runs.items():
        result.add_row(label, [1e3 * r.seconds / calls for r in rs], [r.disturbed for r in rs])
    result.notes.append(f"{calls} calls per run, median of {ctx.repeats * 3} runs; "
                        "PyTorch under torch.inference_mode()")
    return result


def infer_b1(ctx: Context) -> CaseResult:
    return inference(ctx, 1, 0.5)


def infer_b256(ctx: Context) -> CaseResult:
    return inference(ctx, 256, None)
