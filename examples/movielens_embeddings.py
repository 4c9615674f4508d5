"""Collaborative filtering on MovieLens 100k: user and item embeddings side by side, then an MLP.

    python examples/movielens_embeddings.py [ML_100K_DIR] [--epochs 20] [--seed 0]

The model predicts a rating from (user, item) alone (the "MLP" half of neural collaborative
filtering, He et al., 2017):

    Parallel(Embedding(users, 32), Embedding(items, 32))   # (N,), (N,) -> (N, 64)
    -> Linear(64, 64) -> ReLU -> Linear(64, 1)              # rating minus the training mean

trained with MSE and AdamW on the canonical u1.base / u1.test split (80,000 / 20,000 ratings), read
with `gradwise.data.movielens.load_movielens_split`. For the dot-product model with biases and the
sigmoid range (fastai's EmbeddingDotBias) and a look inside the learned embeddings, see
``examples/movielens_collab.toml``, ``examples/movielens_interpret.py`` and ``docs/collab.md``.
10% of u1.base is held out to pick the epoch (the weights of the best validation epoch are kept);
u1.test is used once, at the end. A well-regularized model of this kind reaches a test RMSE of
about 0.93 (docs/structure.md has the measured value); predicting the training mean gives 1.15.

Data: MovieLens 100k from GroupLens (F. M. Harper and J. A. Konstan, 2015, "The MovieLens
Datasets: History and Context", ACM TiiS 5(4):19). Research use only, and it may not be
redistributed: this script reads it from a folder you point it to (by default
``../shared/data/ml-100k`` next to the repository) and never copies it anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import gradwise as gw
from gradwise.data import DataLoader
from gradwise.data.movielens import load_movielens_split
from gradwise.data.sources import DatasetNotFoundError
from gradwise.layers import Linear, ReLU
from gradwise.layers.embedding import Embedding
from gradwise.layers.structure import Parallel
from gradwise.losses import MSE
from gradwise.optim import AdamW

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DIR, help="the ml-100k folder")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        train_set, test_set, _ = load_movielens_split("u1", args.data_dir)
    except DatasetNotFoundError as err:
        sys.exit(f"{err}\nPass the folder: python examples/movielens_embeddings.py PATH/TO/ml-100k")
    # MovieLens ids start at 1: shifted to start at 0, they are the embedding rows.
    users, items, ratings = train_set.users - 1, train_set.items - 1, train_set.ratings
    test_users, test_items, test_ratings = test_set.users - 1, test_set.items - 1, test_set.ratings
    n_users = int(max(users.max(), test_users.max())) + 1
    n_items = int(max(items.max(), test_items.max())) + 1

    gw.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    val = rng.permutation(len(ratings))[: len(ratings) // 10]
    train = np.setdiff1d(np.arange(len(ratings)), val)
    mean = float(ratings[train].mean())

    def loader(rows: np.ndarray, **kwargs: object) -> DataLoader:
        # Two inputs, one per Parallel branch; the target is the rating minus the training mean.
        return DataLoader((users[rows], items[rows]), (ratings[rows] - mean)[:, None], **kwargs)

    train_loader = loader(train, batch_size=256, shuffle=True, rng=rng)
    val_loader = loader(val, batch_size=4096)

    dim = 32
    model = gw.Sequential(
        Parallel(Embedding(n_users, dim), Embedding(n_items, dim)),
        Linear(2 * dim, 64),
        ReLU(),
        Linear(64, 1),
    )
    for table in model[0].branches:
        table.weight.data *= 0.1  # N(0, 0.01) start: N(0, 1) rows would dominate the first layer
    # Decoupled weight decay on everything, embeddings included: the main regularizer here.
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.3)
    trainer = gw.Trainer(model, MSE(), optimizer, metrics=[gw.metrics.rmse], progress=False)

    best_rmse, best_state, best_epoch = np.inf, model.state_dict(), 0
    for epoch in range(1, args.epochs + 1):
        trainer.fit(train_loader, val_loader, epochs=1)
        logs = trainer.history.epochs[-1]
        print(f"epoch {epoch:2d}  train RMSE {logs['rmse']:.4f}  val RMSE {logs['val_rmse']:.4f}")
        if logs["val_rmse"] < best_rmse:
            best_rmse, best_state, best_epoch = logs["val_rmse"], model.state_dict(), epoch
    model.load_state_dict(best_state)

    predicted = trainer.predict((test_users, test_items))[:, 0] + mean
    predicted = np.clip(predicted, 1.0, 5.0)  # ratings are 1..5 stars
    rmse = float(np.sqrt(np.mean((predicted - test_ratings) ** 2)))
    baseline = float(np.sqrt(np.mean((mean - test_ratings) ** 2)))
    print(f"best epoch {best_epoch} (val RMSE {best_rmse:.4f})")
    print(f"test RMSE on u1.test: {rmse:.4f}  (predicting the mean rating: {baseline:.4f})")


if __name__ == "__main__":
    main()
