"""Convolutional cases: the MNIST-1D CNN epoch, a LeNet-style Conv2d epoch, and the default
config's epoch time early and late in training (issue 14: a denormal slowdown).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gradwise.bench.context import Context
from gradwise.bench.epochs import adam_pair, epoch_case, mnist1d_train, to_torch
from gradwise.bench.report import CaseResult, Target


def _default_config() -> Any:
    from gradwise.cli import config as cfgmod

    return cfgmod.load_or_default(None)


def mnist1d_cnn(seed: int) -> Any:
    """The default config's model (the MNIST-1D paper's CNN), built by the CLI's config code."""
    from gradwise.cli import config as cfgmod

    return cfgmod.build_model(_default_config(), np.random.default_rng(seed + 1))


def mnist1d_cnn_torch(torch: Any, model: Any) -> Any:
    nn = torch.nn
    net = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(125, 10),
    )
    return to_torch(model, net, torch)


def lenet(seed: int) -> Any:
    from gradwise.core import Sequential
    from gradwise.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU

    rng = np.random.default_rng(seed + 1)
    return Sequential(
        Conv2d(1, 6, 5, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(6, 16, 5, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(256, 120, rng=rng), ReLU(), Linear(120, 84, rng=rng), ReLU(), Linear(84, 10, rng=rng),
    )


def lenet_torch(torch: Any, model: Any) -> Any:
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    return to_torch(model, net, torch)


def cnn_mnist1d(ctx: Context) -> CaseResult:
    x, y = mnist1d_train(ctx)
    torch = ctx.torch
    make_opt, make_torch_opt = adam_pair(ctx, 1e-2)
    return epoch_case(
        ctx, "cnn-mnist1d", "MNIST-1D CNN epoch (the default config's model), batch 100, Adam lr 1e-2",
        x, y, 100, lambda: mnist1d_cnn(ctx.seed), None if torch is None else (lambda m: mnist1d_cnn_torch(torch, m)),
        make_opt, make_torch_opt,
    )


def lenet_epoch(ctx: Context) -> CaseResult:
    rng = np.random.default_rng(ctx.seed)
    n = ctx.pick(256, 10_000)
    x = rng.standard_normal((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=n, dtype=np.int64)
    torch = ctx.torch
    make_opt, make_torch_opt = adam_pair(ctx, 1e-3)
    return epoch_case(
        ctx, "lenet", "LeNet-style CNN epoch on 28x28 (Conv2d 1->6->16 k5, MaxPool 2, Linear 256-120-84-10), "
        "batch 64, Adam lr 1e-3",
        x, y, 64, lambda: lenet(ctx.seed), None if torch is None else (lambda m: lenet_torch(torch, m)),
        make_opt, make_torch_opt, [Target("ratio", "<=", 0.9)],
    )


def subnormal_share(arrays: list[np.ndarray]) -> float:
    """Share of the entries of float32 `arrays` that are subnormal (nonzero, below float32's
    smallest normal number): arithmetic on them takes a slow path on x86 CPUs."""
    tiny = np.finfo(np.float32).tiny
    total = sum(a.size for a in arrays)
    sub = sum(int(np.count_nonzero((np.abs(a) < tiny) & (a != 0))) for a in arrays)
    return sub / total if total else 0.0


def default_epochs(ctx: Context) -> CaseResult:
    """Issue 14: the default config trained for 150 epochs; epoch times at the start and the end.

    gradwise trains through the CLI's own builders (model, loss, Adam, schedule, L2 penalty,
    shuffled batches) with `Trainer.fit(epochs=1)` called once per epoch; PyTorch trains the
    same network from the same weights with Adam and coupled L2 on the weights only (what the
    L2 penalty adds to the gradient), on batches shuffled from the same seed. The two alternate epoch by
    epoch. A slowdown from denormal floats as the weights settle shows as late / early >> 1.
    """
    from gradwise.cli import config as cfgmod
    from gradwise.data.loader import DataLoader
    from gradwise.training.trainer import Trainer

    epochs = ctx.pick(4, 150)
    window = ctx.pick(1, 5)
    cfg = _default_config()
    seed = int(cfg.section("train")["seed"])
    bs = int(cfg.section("train")["batch_size"])
    splits = cfgmod.build_data(cfg, np.random.default_rng(seed))
    x = np.ascontiguousarray(splits.x_train, dtype=np.float32)
    y = splits.y_train.astype(np.int64)
    model = cfgmod.build_model(cfg, np.random.default_rng(seed))
    loader = DataLoader(x, y, batch_size=bs, shuffle=True, rng=np.random.default_rng(seed + 1))
    lr, callbacks = cfgmod.build_schedule(cfg, steps_per_epoch=len(loader))
    trainer = Trainer(model, cfgmod.build_loss(cfg), cfgmod.build_optimizer(cfg, model, lr),
                      callbacks=callbacks, penalty=cfgmod.build_penalty(cfg), metrics=(), progress=False)
    ours: list[float] = []
    theirs: list[float] = []
    torch = ctx.torch
    step_torch = None
    if torch is not None:
        net = mnist1d_cnn_torch(torch, model)
        strength = float(cfg.section("penalty")["strength"])
        decay = [p for p in net.parameters() if p.ndim > 1]
        rest = [p for p in net.parameters() if p.ndim <= 1]
        opt = torch.optim.Adam([{"params": decay, "weight_decay": strength}, {"params": rest}],
                               lr=float(cfg.section("optimizer")["lr"]))
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        order_rng = np.random.default_rng(seed + 1)

        def step_torch() -> None:
            idx = torch.from_numpy(order_rng.permutation(len(x)))
            for start in range(0, len(x), bs):
                sel = idx[start : start + bs]
                opt.zero_grad()
                out = loss_fn(net(xt[sel]), yt[sel])
                out.backward()
                opt.step()
                out.item()

    for _ in range(epochs):
        t0 = time.perf_counter()
        trainer.fit(loader, epochs=1)
        ours.append(time.perf_counter() - t0)
        if step_torch is not None:
            t0 = time.perf_counter()
            step_torch()
            theirs.append(time.perf_counter() - t0)

    first, last = f"epochs 1-{window}", f"epochs {epochs - window + 1}-{epochs}"
    ours_arrays = [p.data for p in model.parameters()]
    ours_arrays += [v for st in trainer.optimizer.state.values() for v in st.values() if isinstance(v, np.ndarray)]
    result = CaseResult("default-epochs", f"default config (MNIST-1D CNN) epoch time early vs late, {epochs} epochs",
                        "s/epoch", ours=f"gradwise {last}")
    result.add_row(f"gradwise {first}", ours[:window])
    result.add_row(f"gradwise {last}", ours[-window:])
    result.extra["gradwise late / early"] = result.median_of(f"gradwise {last}") / result.median_of(f"gradwise {first}")
    result.extra["gradwise subnormal share (weights + Adam state)"] = subnormal_share(ours_arrays)
    if theirs:
        result.add_row(f"PyTorch {first}", theirs[:window])
        result.add_row(f"PyTorch {last}", theirs[-window:])
        result.peer = f"PyTorch {last}"
        result.extra["PyTorch late / early"] = result.median_of(f"PyTorch {last}") / result.median_of(f"PyTorch {first}")
        theirs_arrays = [p.detach().numpy() for p in net.parameters()]
        theirs_arrays += [v.numpy() for st in opt.state.values() for v in st.values() if v.ndim > 0]
        result.extra["PyTorch subnormal share (weights + Adam state)"] = subnormal_share(theirs_arrays)
    else:
        result.peer_missing = ctx.torch_missing
    result.notes.append(f"{len(x):,} training samples, batch {bs}, shuffled; training epochs only (no validation); "
                        f"the two libraries alternate epoch by epoch; late / early >> 1 means a slowdown "
                        f"as training goes on (denormal floats)")
    return result

