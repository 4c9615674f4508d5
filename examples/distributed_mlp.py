"""Data-parallel training over MPI: the MNIST-1D MLP of examples/mnist1d_mlp.toml, in float64.

    python examples/distributed_mlp.py --epochs 3                  # one process
    mpiexec -n 2 python examples/distributed_mlp.py --epochs 3     # two ranks, half a batch each

Both runs see the same global batches of 100 in the same order (the loaders share one seed), so
they end with the same weights up to rounding: ``--save w.npz`` on each and compare (the tests do;
docs/distributed.md explains why the difference stays below 1e-12). ``--bn local`` adds a
BatchNorm1d after each hidden layer (per-rank statistics), ``--bn sync`` synchronizes them.
``--hidden 1000`` is the larger model of the scaling figure (bench/distributed_scaling.py).
Measured (2 cores under load): 3 epochs, test accuracy 0.442 with one process and with two ranks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import gradwise as gw
from gradwise.data import DataLoader, load_mnist1d
from gradwise.distributed import Communicator, convert_sync_batchnorm, launched_size
from gradwise.layers import BatchNorm1d, Linear, ReLU
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import Adam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100, help="the global batch, split across ranks")
    parser.add_argument("--bn", choices=("none", "local", "sync"), default="none",
                        help="BatchNorm after each hidden layer: none, per-rank statistics, or synchronized")
    parser.add_argument("--hidden", type=int, default=100, help="units per hidden layer (100: the paper's MLP)")
    parser.add_argument("--save", help="write the final weights to this .npz (rank 0)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the other ranks")
    args = parser.parse_args()

    # Same seed on every rank: the same data order; rank 0's initial weights are broadcast anyway.
    gw.manual_seed(42)
    x_train, y_train, x_test, y_test = load_mnist1d(dtype=np.float64)

    def hidden(n: int) -> list[gw.Layer]:
        if args.bn == "none":
            return [Linear(n, args.hidden), ReLU()]
        # No bias before a BatchNorm: its gradient is zero but for rounding, which Adam would
        # amplify by 1/eps (docs/distributed.md).
        return [Linear(n, args.hidden, bias=False), BatchNorm1d(args.hidden), ReLU()]

    model = gw.Sequential(*hidden(40), *hidden(args.hidden), Linear(args.hidden, 10)).astype(np.float64)
    comm = Communicator(timeout=args.timeout) if launched_size() > 1 else None
    if comm is not None and args.bn == "sync":
        convert_sync_batchnorm(model, comm)
    loader = DataLoader(x_train, y_train, batch_size=args.batch_size, shuffle=True,
                        rng=np.random.default_rng(0), dtype=np.float64)
    trainer = gw.Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2),
                         metrics=[gw.metrics.accuracy], progress=False,
                         distributed=comm if comm is not None else False)
    start, in_collectives = time.perf_counter(), 0.0 if comm is None else comm.seconds
    trainer.fit(loader, epochs=args.epochs)
    seconds = time.perf_counter() - start
    if comm is not None:  # the gradient all-reduces, the loss and scores exchanges, waiting included
        in_collectives = comm.seconds - in_collectives
    test = trainer.evaluate(DataLoader(x_test, y_test, batch_size=1000, dtype=np.float64))
    if trainer.rank == 0:
        samples = args.epochs * len(x_train)
        print(f"{trainer.world_size} rank(s): {args.epochs} epochs in {seconds:.2f} s "
              f"({samples / seconds:,.0f} samples/s), train loss {trainer.history.epochs[-1]['loss']:.4f}, "
              f"test accuracy {test['accuracy']:.4f}")
        if comm is not None:
            print(f"collectives: {in_collectives:.2f} s of {seconds:.2f} s ({in_collectives / seconds:.0%}), "
                  f"{trainer.global_step} gradient all-reduces of {8 * (model.num_parameters() + 1):,} bytes")
        if args.save:
            history = {f"history/{key}": np.array([row[key] for row in trainer.history.epochs])
                       for key in ("loss", "accuracy")}
            np.savez(args.save, **model.state_dict(), **history)


if __name__ == "__main__":
    main()
