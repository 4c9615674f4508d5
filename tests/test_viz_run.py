"""Tests for the run-directory plots of gradwise/viz/ (run.py, histograms.py, schedule.py: plot_run,
plot_histograms, plot_lr_schedule) and for gradwise/training/histograms.py (HistogramSnapshots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradwise as gw
from gradwise.data.datasets import make_spiral
from gradwise.data.loader import DataLoader
from gradwise.layers import Linear, ReLU
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.training.histograms import (
    HistogramSnapshots,
    histogram_data,
    histogram_file,
    load_histograms,
    save_histograms,
)
from gradwise.training.metrics import accuracy
from gradwise.training.rundir import rows_to_csv
from gradwise.viz import plot_histogram_data, plot_histograms, plot_lr_schedule, plot_run


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 1000


def model(seed: int = 0) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(Linear(2, 16, rng=rng), ReLU(), Linear(16, 3, rng=rng))


def train_run(run: Path, epochs: int = 4, callbacks: list | None = None) -> gw.Trainer:
    x, y = make_spiral(50, rng=np.random.default_rng(0))
    m = model()
    m[0].freeze()
    sched = gw.optim.schedules.Cosine(0.1, total_steps=epochs * 5)
    trainer = gw.Trainer(
        m, SoftmaxCrossEntropy(), gw.optim.SGD(m.parameters(), lr=sched, momentum=0.9), metrics=[accuracy],
        progress=False, run_dir=run, callbacks=callbacks or [], plot=plot_run,
    )
    trainer.fit(DataLoader(x, y, batch_size=30, shuffle=True, rng=np.random.default_rng(1)),
                DataLoader(x, y, batch_size=150), epochs=epochs)
    return trainer


# ----------------------------------------------------------------------------------------- histograms


def test_histogram_data_counts_every_entry_and_marks_frozen_parameters() -> None:
    m = model()
    m[0].freeze()
    m[2].weight.grad[...] = 1.0
    data = histogram_data(m, bins=20)
    assert data["names"] == ["0.weight", "0.bias", "2.weight", "2.bias"] and data["frozen"] == ["0.weight", "0.bias"]
    for name, p in m.named_parameters():
        for kind in ("weight", "grad"):
            h = data[kind][name]
            assert h["counts"].sum() == p.size and h["edges"].size == h["counts"].size + 1
    w = m[2].weight.data.astype(np.float64)
    np.testing.assert_allclose(data["weight"]["2.weight"]["stats"], [w.mean(), w.std(), w.min(), w.max(),
                                                                     np.sqrt(np.mean(w**2))])
    assert data["weight"]["2.weight"]["counts"].size == 13  # 48 entries: min(20, max(10, int(2 sqrt(48))))
    assert data["weight"]["2.bias"]["counts"].size == 10  # 3 entries: the floor of 10 bins
    assert data["grad"]["2.weight"]["stats"][0] == 1.0
    with pytest.raises(ValueError, match="bins"):
        histogram_data(m, bins=0)


def test_histograms_round_trip_through_a_file(tmp_path: Path) -> None:
    m = model()
    m[0].freeze()
    data = histogram_data(m)
    path = save_histograms(histogram_file(tmp_path / "h", 7), data, epoch=7)
    assert path.name == "epoch_0007.safetensors"
    back, epoch = load_histograms(path)
    assert epoch == 7 and back["names"] == data["names"] and back["frozen"] == data["frozen"]
    for kind in ("weight", "grad"):
        for name in data["names"]:
            for field in ("counts", "edges", "stats"):
                np.testing.assert_array_equal(back[kind][name][field], data[kind][name][field])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.safetensors.*not a histogram file"):
        load_histograms(tmp_path / "junk.safetensors")


def test_plot_histograms_of_a_live_model(tmp_path: Path) -> None:
    m = model()
    out = plot_histograms(m, tmp_path / "deep" / "h.png", title="at init")
    assert is_png(out)


def test_plot_lr_schedule(tmp_path: Path) -> None:
    sched = gw.optim.schedules.Cosine(0.1, total_steps=100, restarts=True)
    assert is_png(plot_lr_schedule([sched(t) for t in range(300)], tmp_path / "steps.png", xlabel="step"))
    assert is_png(plot_lr_schedule([0.1, 0.01, 0.001], tmp_path / "log.png", log_scale=True))
    assert is_png(plot_lr_schedule([float("nan")] * 3, tmp_path / "none.png"))


# ----------------------------------------------------------------------------------------- the callback


def test_histogram_snapshots_write_data_and_plots_into_the_run(tmp_path: Path) -> None:
    snaps = HistogramSnapshots(epochs=(1, 4), every=3, bins=16, draw=plot_histogram_data)
    train_run(tmp_path / "run", epochs=4, callbacks=[snaps])
    assert snaps.taken == [1, 3, 4]
    files = sorted(p.name for p in (tmp_path / "run" / "histograms").iterdir())
    assert files == ["epoch_0001.safetensors", "epoch_0003.safetensors", "epoch_0004.safetensors"]
    for e in (1, 3, 4):
        assert is_png(tmp_path / "run" / "plots" / f"histograms_epoch_{e:04d}.png")
    data, epoch = load_histograms(tmp_path / "run" / "histograms" / "epoch_0004.safetensors")
    assert epoch == 4 and data["frozen"] == ["0.weight", "0.bias"]
    assert snaps.state_dict() == {"taken": [1, 3, 4]}
    fresh = HistogramSnapshots(epochs=(1,))
    fresh.load_state_dict(snaps.state_dict())
    assert fresh.taken == [1, 3, 4]


def test_histogram_snapshots_without_a_run_dir(tmp_path: Path) -> None:
    x, y = make_spiral(20, rng=np.random.default_rng(0))
    m = model()
    loader = DataLoader(x, y, batch_size=20)
    lonely = gw.Trainer(m, SoftmaxCrossEntropy(), gw.optim.SGD(m.parameters(), lr=0.1), progress=False,
                        callbacks=[HistogramSnapshots(epochs=(1,))])
    with pytest.raises(ValueError, match="out_dir"):
        lonely.fit(loader, epochs=1)
    snaps = HistogramSnapshots(epochs=(1,), out_dir=tmp_path / "h")
    gw.Trainer(m, SoftmaxCrossEntropy(), gw.optim.SGD(m.parameters(), lr=0.1), progress=False,
               callbacks=[snaps]).fit(loader, epochs=1)
    assert [p.name for p in (tmp_path / "h").iterdir()] == ["epoch_0001.safetensors"]  # nothing drawn


def test_histogram_snapshots_hand_each_snapshot_to_draw(tmp_path: Path) -> None:
    calls = []
    snaps = HistogramSnapshots(every=2, out_dir=tmp_path / "h", draw=lambda *a, **k: calls.append((a, k)))
    x, y = make_spiral(20, rng=np.random.default_rng(0))
    m = model()
    gw.Trainer(m, SoftmaxCrossEntropy(), gw.optim.SGD(m.parameters(), lr=0.1), progress=False,
               callbacks=[snaps]).fit(DataLoader(x, y, batch_size=20), epochs=4)
    assert [(a[1], k) for a, k in calls] == [
        (tmp_path / "h" / "histograms_epoch_0002.png", {"title": "after epoch 2"}),
        (tmp_path / "h" / "histograms_epoch_0004.png", {"title": "after epoch 4"}),
    ]
    assert calls[0][0][0]["names"] == [name for name, _ in m.named_parameters()]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"epochs": (0,)}, {"epochs": (1.5,)}, {"every": 0}, {"epochs": (1,), "bins": 0}, {"epochs": (1,), "draw": True}],
)
def test_histogram_snapshots_validate(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="HistogramSnapshots"):
        HistogramSnapshots(**kwargs)


# ----------------------------------------------------------------------------------------- plot_run


def test_plot_run_redraws_everything_from_the_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer = train_run(run, epochs=4, callbacks=[HistogramSnapshots(epochs=(2,))])
    for png in (run / "plots").iterdir():
        png.unlink()
    written = plot_run(run)
    names = [p.name for p in written]
    assert names == ["loss.png", "accuracy.png", "lr.png", "histograms_epoch_0002.png"]
    assert all(p.parent == run / "plots" and is_png(p) for p in written)

    # With the per-iteration losses the trainer should write (batch_loss.csv), the loss plot gains
    # the raw and smoothed curves and lr.png goes per step.
    per_epoch = len(trainer.history.batch_loss) // 4
    rows = [{"step": i + 1, "epoch": i // per_epoch, "loss": v, "lr": 0.1 * (1 - i / 20)}
            for i, v in enumerate(trainer.history.batch_loss)]
    (run / "batch_loss.csv").write_bytes(rows_to_csv(rows))
    before = (run / "plots" / "loss.png").read_bytes()
    elsewhere = plot_run(run, tmp_path / "other", smoothing=0.5)
    assert [p.name for p in elsewhere] == names and all(is_png(p) for p in elsewhere)
    assert (tmp_path / "other" / "loss.png").read_bytes() != before


def test_plot_run_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="nothing to plot"):
        plot_run(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "history.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no 'epoch' column"):
        plot_run(bad)
    (bad / "history.csv").write_text("epoch,loss,lr\n0,1.0,0.1\n")
    (bad / "batch_loss.csv").write_text("step,value\n1,2\n")
    with pytest.raises(ValueError, match="batch_loss.csv.*no 'loss' column"):
        plot_run(bad)


def test_plot_run_with_histograms_only(tmp_path: Path) -> None:
    save_histograms(histogram_file(tmp_path / "histograms", 3), histogram_data(model()), epoch=3)
    written = plot_run(tmp_path)
    assert [p.name for p in written] == ["histograms_epoch_0003.png"] and is_png(written[0])
