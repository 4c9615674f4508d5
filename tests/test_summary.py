"""Tests for gradwise/summary.py (and `Layer.summary`): shapes, parameter counts and FLOPs
against hand-computed values, and the model left untouched."""

from __future__ import annotations

import numpy as np
import pytest

import gradwise as gw
from gradwise.layers import (
    GRU,
    LSTM,
    RNN,
    BatchNorm1d,
    Conv1d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Linear,
    MaxPool1d,
    Parallel,
    ReLU,
    Reshape,
    Residual,
    TakeLast,
)
from gradwise.summary import Summary, layer_flops, summary


def mlp() -> gw.Sequential:
    rng = np.random.default_rng(0)
    return gw.Sequential(Linear(40, 32, rng=rng), ReLU(), Dropout(0.5), Linear(32, 10, rng=rng))


def cnn() -> gw.Sequential:
    rng = np.random.default_rng(0)
    return gw.Sequential(
        Reshape((1, 40)),
        Conv1d(1, 8, 5, stride=2, padding=1, rng=rng),  # L_out = (40 + 2 - 4 - 1) // 2 + 1 = 19
        BatchNorm1d(8),
        ReLU(),
        MaxPool1d(2),  # 19 -> 9
        Flatten(),
        Linear(72, 10, rng=rng),
    )


def rnn() -> gw.Sequential:
    rng = np.random.default_rng(0)
    return gw.Sequential(LSTM(3, 5, num_layers=2, batch_first=True, rng=rng), TakeLast(), Linear(5, 2, rng=rng))


# ----------------------------------------------------------------------------------------- counts


@pytest.mark.parametrize("batch", [1, 4])
def test_mlp_shapes_params_and_flops_by_hand(batch: int) -> None:
    s = summary(mlp(), (batch, 40))
    assert [r.name for r in s.rows] == ["0", "1", "2", "3"]
    assert [r.kind for r in s.rows] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert [r.output_shape for r in s.rows] == [(batch, 32), (batch, 32), (batch, 32), (batch, 10)]
    assert [r.params for r in s.rows] == [40 * 32 + 32, 0, 0, 32 * 10 + 10]
    # 2 x multiply-adds of the matrix products, for the whole batch; activations count 0
    assert [r.flops for r in s.rows] == [2 * 40 * 32 * batch, 0, 0, 2 * 32 * 10 * batch]
    assert s.total_params == s.trainable_params == 1642 and s.frozen_params == 0
    assert s.total_flops == (2560 + 640) * batch
    assert s.input_shape == (batch, 40) and s.output_shape == (batch, 10)


def test_cnn_conv_flops_are_2_cin_k_cout_lout_per_sample() -> None:
    s = summary(cnn(), (1, 40))
    conv, bn, pool, lin = s["1"], s["2"], s["4"], s["6"]
    assert conv.output_shape == (1, 8, 19) and pool.output_shape == (1, 8, 9) and lin.input_shape == (1, 72)
    assert conv.flops == 2 * 1 * 5 * 8 * 19
    assert bn.flops == 0 and pool.flops == 0
    assert lin.flops == 2 * 72 * 10
    assert conv.params == 8 * 1 * 5 + 8 and bn.params == 16 and lin.params == 730
    assert s.total_params == 48 + 16 + 730
    assert s.total_flops == 1520 + 1440
    assert summary(cnn(), (3, 40)).total_flops == 3 * (1520 + 1440)


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (Conv2d(3, 4, 3, padding=1), (2, 3, 8, 8), 2 * 3 * 9 * 4 * 64 * 2),
        (Conv2d(3, 6, (3, 2), stride=2), (1, 3, 9, 8), 2 * 3 * 6 * 6 * (4 * 4)),
        (Conv1d(4, 8, 3, groups=2), (1, 4, 10), 2 * (4 // 2) * 3 * 8 * 8),
        (Linear(6, 5), (2, 7, 6), 2 * 6 * 5 * 14),  # applied to every position of a sequence
    ],
)
def test_flops_of_single_layers(layer: gw.Layer, shape: tuple[int, ...], expected: int) -> None:
    s = summary(layer, shape)
    assert s.total_flops == expected
    assert [r.name for r in s.rows] == [""]  # a bare layer is its own single row


def test_lstm_flops_and_params_by_hand() -> None:
    s = summary(rnn(), (2, 7, 3))
    lstm = s["0"]
    g, h = 4, 5
    assert lstm.params == (g * h * 3 + g * h * h + 2 * g * h) + (g * h * h + g * h * h + 2 * g * h)
    t, n = 7, 2
    assert lstm.flops == 2 * g * h * (3 + h) * t * n + 2 * g * h * (h + h) * t * n
    assert lstm.output_shape == (2, 7, 5) and s["1"].output_shape == (2, 5)
    assert s.total_flops == lstm.flops + 2 * 5 * 2 * 2


@pytest.mark.parametrize(
    ("layer", "shape", "gates"),
    [
        (RNN(3, 4, bidirectional=True), (6, 2, 3), 1),  # (T, N, F): not batch_first
        (GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True), (2, 6, 3), 3),
    ],
)
def test_recurrent_flops_for_both_directions_and_layouts(layer: gw.Layer, shape: tuple[int, ...], gates: int) -> None:
    t, n = (shape[1], shape[0]) if layer.batch_first else (shape[0], shape[1])
    h, d = 4, 2
    expected = sum(d * 2 * gates * h * ((3 if k == 0 else d * h) + h) * t * n for k in range(layer.num_layers))
    assert summary(layer, shape).total_flops == expected


def test_containers_are_recursed_with_nested_names() -> None:
    rng = np.random.default_rng(1)
    model = gw.Sequential(
        Linear(4, 6, rng=rng),
        Residual(gw.Sequential(Linear(6, 6, rng=rng), ReLU())),
        Linear(6, 2, rng=rng),
    )
    s = summary(model, (1, 4))
    assert [r.name for r in s.rows] == ["0", "1", "1.block", "1.block.0", "1.block.1", "2"]
    assert [r.depth for r in s.rows] == [0, 0, 1, 2, 2, 0]
    assert s["1"].container and s["1.block"].container and not s["1.block.0"].container
    # a container's row adds up its children; the leaves add up to the totals
    assert s["1"].params == s["1.block.0"].params == 42 and s["1"].flops == s["1.block.0"].flops == 2 * 36
    assert sum(r.params for r in s.leaves) == s.total_params == model.num_parameters()
    assert sum(r.flops for r in s.leaves) == s.total_flops == 2 * (24 + 36 + 12)


def test_multi_input_model_with_embeddings_gets_integer_zeros() -> None:
    rng = np.random.default_rng(2)
    model = gw.Sequential(
        Parallel(Embedding(10, 4, rng=rng), Embedding(20, 4, rng=rng), gw.Sequential(Linear(5, 8, rng=rng), ReLU())),
        Linear(16, 1, rng=rng),
    )
    s = summary(model, ((3,), (3,), (3, 5)))
    assert s.dtype == (np.dtype(np.int64), np.dtype(np.int64), np.dtype(np.float32))
    assert s["0"].input_shape == ((3,), (3,), (3, 5)) and s["0"].output_shape == (3, 16)
    assert s["0.0"].flops == 0 and s["0.2.0"].flops == 2 * 5 * 8 * 3
    assert s.total_params == 40 + 80 + 48 + 17
    assert "((3,), (3,), (3, 5))" in str(s)


def test_trainable_and_frozen_counts() -> None:
    model = cnn()
    model[1].freeze()
    s = summary(model, (1, 40))
    assert s["1"].trainable == 0 and s["1"].frozen == 48
    assert s.frozen_params == 48 and s.trainable_params == s.total_params - 48
    assert "48 frozen" in str(s)


def test_custom_layer_reports_its_own_flops() -> None:
    class Square(gw.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x * x

        def flops(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
            return int(np.prod(output_shape))

    assert summary(gw.Sequential(Square(), Linear(3, 2)), (4, 3)).total_flops == 12 + 2 * 3 * 2 * 4
    assert layer_flops(ReLU(), (4, 3), (4, 3)) == 0


def test_layers_describe_themselves_through_the_protocol() -> None:
    assert Linear(3, 2).flops((4, 3), (4, 2)) == 2 * 3 * 2 * 4
    assert Conv1d(2, 4, 3).flops((5, 2, 10), (5, 4, 8)) == 2 * 2 * 3 * 4 * 8 * 5
    assert ReLU().flops((4, 3), (4, 3)) == 0 and gw.Sequential(Linear(3, 2)).flops((4, 3), (4, 2)) == 0
    f32 = np.dtype(np.float32)
    assert Linear(3, 2).input_dtype(f32) == f32 and Embedding(5, 2).input_dtype(f32) == np.int64
    assert gw.Sequential(gw.Sequential(Embedding(5, 2)), Flatten()).input_dtype(f32) == np.int64
    assert gw.Sequential().input_dtype(np.dtype(np.float64)) == np.float64
    nested = Parallel(Embedding(5, 2), Linear(3, 2), Parallel(Linear(1, 1)))
    assert nested.input_dtype(f32) == (np.dtype(np.int64), f32, f32)


def test_summary_rejects_what_is_not_a_layer() -> None:
    class Lookalike:  # has forward and named_modules, but not the gradwise layer protocol
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

        def named_modules(self) -> list[tuple[str, object]]:
            return [("", self)]

    with pytest.raises(TypeError, match="must be a gradwise Layer, got Lookalike"):
        summary(Lookalike(), (1, 3))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- side effects


def test_the_model_is_left_untouched() -> None:
    model = gw.Sequential(Embedding(5, 3, max_norm=0.1, rng=np.random.default_rng(0)), Flatten(), BatchNorm1d(6))
    model.train()
    before = model.state_dict()
    summary(model, (2, 2))
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # no renorm, no running stats
    assert all(m.training for _, m in model.named_modules())
    lin = Linear(3, 2)
    lin.summary((1, 3))
    assert lin._x is None  # nothing cached: the forward ran on a copy
    with pytest.raises(RuntimeError, match="before forward"):
        lin.backward(np.ones((1, 2), dtype=np.float32))


def test_layer_summary_delegates() -> None:
    model = mlp()
    s = model.summary((1, 40))
    assert isinstance(s, Summary) and s.total_flops == summary(model, (1, 40)).total_flops


# ----------------------------------------------------------------------------------------- rendering


def test_str_is_a_plain_text_table() -> None:
    text = str(summary(cnn(), (1, 40)))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("Layer"))
    for column in ("Type", "Output shape", "Params", "Trainable", "FLOPs"):
        assert column in header
    assert any(line.split()[:2] == ["1", "Conv1d"] and "(1, 8, 19)" in line for line in lines)
    assert "Parameters: 794 (794 trainable, 0 frozen)" in text
    assert "FLOPs per forward pass: 2,960" in text


def test_rich_rendering() -> None:
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(summary(cnn(), (1, 40)))
    text = console.export_text()
    assert "Conv1d" in text and "(1, 8, 19)" in text and "794" in text


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [(), (0, 40), "40", (1.5, 40), ((1, 40), 3)])
def test_malformed_input_shape(bad: object) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        summary(mlp(), bad)


def test_a_shape_the_model_rejects_names_it() -> None:
    with pytest.raises(ValueError, match=r"summary: the model rejects an input of shape \(1, 39\).*Linear\(40, 32\)"):
        summary(mlp(), (1, 39))


# ----------------------------------------------------------------------------------------- oracle


@pytest.mark.oracle
def test_parameter_counts_equal_torch() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def count(m: object) -> int:
        return sum(p.numel() for p in m.parameters())  # type: ignore[attr-defined]

    t_mlp = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    t_cnn = nn.Sequential(
        nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 8, 5, stride=2, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
        nn.MaxPool1d(2), nn.Flatten(), nn.Linear(72, 10),
    )
    t_lstm = nn.LSTM(3, 5, num_layers=2, batch_first=True)
    t_gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    assert summary(mlp(), (1, 40)).total_params == count(t_mlp)
    assert summary(cnn(), (1, 40)).total_params == count(t_cnn)
    assert summary(rnn(), (1, 7, 3))["0"].params == count(t_lstm)
    assert summary(GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True), (1, 6, 3)).total_params == count(t_gru)
    with torch.no_grad():
        y = t_cnn(torch.zeros(1, 40))
    assert summary(cnn(), (1, 40)).output_shape == tuple(y.shape)
