"""Train the MovieLens dot-product model as the fastai lesson does, then look inside it.

    python examples/movielens_interpret.py [ML_100K_DIR] [--plot collab_pca.png] [--seed 0]

The model of ``examples/movielens_collab.toml`` with the lesson's own recipe (fastbook chapter 8):
EmbeddingDotBias with 50 factors and y_range (0, 5.5), a random 80/20 split of u.data, batch 64,
five one-cycle epochs at lr 5e-3, AdamW with weight decay 0.1 on every parameter (validation MSE
0.8121; the config's tuned recipe, lr 4e-3 and decay 0.15 on the factors only, gives 0.7991:
docs/collab.md). Then, as in the lesson:

- the movies with the lowest and highest learned bias (rated low, or high, whoever watches them);
- the movies nearest to a few well-known ones by cosine similarity of their factor vectors;
- the first two principal components of the factors of the most-rated movies, drawn with their
  titles (``--plot``).

Data: MovieLens 100k (research use only, may not be redistributed): pass its folder, or set
GRADWISE_DATA to a folder holding ``ml-100k/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import gradwise as gw
from gradwise.collab import EmbeddingDotBias, item_pca, most_rated, nearest_items, top_items_by_bias
from gradwise.collab.data import movielens_collab
from gradwise.data import DataLoader
from gradwise.data.sources import DatasetNotFoundError
from gradwise.losses import MSE
from gradwise.optim import AdamW
from gradwise.optim.schedules import one_cycle
from gradwise.training.callbacks import CycleMomentum

EPOCHS, LR, WD, BATCH = 5, 5e-3, 0.1, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data_dir", nargs="?", type=Path, help="the ml-100k folder (default: $GRADWISE_DATA/ml-100k)")
    parser.add_argument("--plot", type=Path, default=Path("collab_pca.png"), help="where to write the PCA plot")
    parser.add_argument("--top", type=int, default=50, help="how many of the most-rated movies to plot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        data = movielens_collab(args.data_dir, "random", 0.2, seed=0, items="title")
    except DatasetNotFoundError as err:
        sys.exit(str(err))

    gw.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = EmbeddingDotBias(data.users, data.items, 50, (0.0, 5.5), rng=rng)
    train = DataLoader(data.x_train, data.y_train, batch_size=BATCH, shuffle=True, rng=rng)
    valid = DataLoader(data.x_test, data.y_test, batch_size=4096)
    # fastai's fit_one_cycle: 25% warm-up, momentum (Adam's beta1) 0.95 -> 0.85 -> 0.95; its Adam:
    # betas (0.9, 0.99), eps 1e-5, decoupled weight decay.
    schedule = one_cycle(max_lr=LR, total_steps=EPOCHS * len(train), pct_start=0.25, final_div_factor=4000.0)
    optimizer = AdamW(model.parameters(), lr=schedule, betas=(0.9, 0.99), eps=1e-5, weight_decay=WD)
    trainer = gw.Trainer(model, MSE(), optimizer, metrics=[gw.metrics.rmse], callbacks=[CycleMomentum(schedule)],
                         progress=False)
    start = time.perf_counter()
    trainer.fit(train, valid, epochs=EPOCHS)
    for epoch, logs in enumerate(trainer.history.epochs, 1):
        print(f"epoch {epoch}  train MSE {logs['loss']:.4f}  valid MSE {logs['val_loss']:.4f}")
    print(f"{EPOCHS} epochs in {time.perf_counter() - start:.1f} s")

    titles = data.titles
    popular = most_rated(data.train.items, 1000)  # the lesson ranks among movies with many ratings
    low, high = top_items_by_bias(model, 5, titles, item_ids=popular)
    print("\nlowest bias (rated low even by users whose taste matches them):")
    print("".join(f"  {r.score:+.3f}  {r.title}\n" for r in low), end="")
    print("highest bias (rated high whoever watches them):")
    print("".join(f"  {r.score:+.3f}  {r.title}\n" for r in high), end="")

    by_title = {t: i for i, t in titles.items()}
    for title in ("Star Wars (1977)", "Silence of the Lambs, The (1991)", "Toy Story (1995)"):
        if by_title.get(title) in set(data.items.classes.tolist()):
            near = nearest_items(model, by_title[title], 5, titles, item_ids=popular)
            print(f"\nnearest to {title}: " + "; ".join(f"{r.title} ({r.score:.2f})" for r in near))

    shown = most_rated(data.train.items, args.top)
    coords, _, explained = item_pca(model, shown)
    from gradwise.viz.embeddings import plot_embedding_2d

    out = plot_embedding_2d(
        coords, [titles[int(i)] for i in shown], args.plot, figsize=(9.0, 9.0), dpi=80,
        title=f"MovieLens 100k: item factors of the {args.top} most-rated movies, first two principal components",
        axis_labels=(f"PC 1 ({explained[0]:.0%} of the variance)", f"PC 2 ({explained[1]:.0%})"),
    )
    print(f"\nPCA plot: {out}")


if __name__ == "__main__":
    main()
