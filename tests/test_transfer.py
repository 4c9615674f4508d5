"""Tests for gradwise/transfer.py and the fine-tuning helpers of `Layer` (freeze, unfreeze, frozen):
partial loads, new heads, GloVe files, and the freeze / train the head / unfreeze recipe."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradwise as gw
from gradwise.data.datasets import load_mnist1d
from gradwise.data.loader import DataLoader
from gradwise.layers import BatchNorm1d, Embedding, Linear, ReLU, Residual
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import layer_groups
from gradwise.training.metrics import accuracy
from gradwise.transfer import (
    LoadReport,
    freeze_body,
    load_glove,
    load_partial,
    replace_head,
)


def mlp(seed: int = 0, out: int = 3) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(Linear(4, 8, rng=rng), ReLU(), Linear(8, 8, rng=rng), ReLU(), Linear(8, out, rng=rng))


# ----------------------------------------------------------------------------------------- freeze


def test_freeze_unfreeze_and_frozen() -> None:
    model = mlp()
    assert not model.frozen and not model[0].frozen
    assert model[0].freeze() is model[0]  # chains
    assert model[0].frozen and not model.frozen
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True, True, True]
    assert not ReLU().frozen  # no parameters: nothing to be frozen
    model.freeze()
    assert model.frozen and all(not p.requires_grad for p in model.parameters())
    assert model.unfreeze() is model and not model.frozen
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_parameters_get_no_update_and_no_optimizer_state() -> None:
    model = mlp()
    freeze_body(model)
    before = model.state_dict()
    opt = gw.optim.Adam(model.parameters(), lr=1e-2)
    x, y = np.random.default_rng(1).standard_normal((32, 4)).astype(np.float32), np.arange(32) % 3
    gw.Trainer(model, SoftmaxCrossEntropy(), opt, progress=False).fit(DataLoader(x, y, batch_size=8), epochs=2)
    after = model.state_dict()
    for key in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert np.array_equal(before[key], after[key])
    assert not np.array_equal(before["4.weight"], after["4.weight"])
    assert {p.name for p in opt.state} == {"4.weight", "4.bias"}

    model.unfreeze()  # the same optimizer picks the body up at its next step, with fresh state
    gw.Trainer(model, SoftmaxCrossEntropy(), opt, progress=False).fit(DataLoader(x, y, batch_size=8), epochs=1)
    assert not np.array_equal(before["0.weight"], model.state_dict()["0.weight"])
    assert len(opt.state) == 6


def test_freeze_body_validates() -> None:
    with pytest.raises(TypeError, match="Sequential"):
        freeze_body(Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_head_layers"):
        freeze_body(mlp(), num_head_layers=6)
    assert freeze_body(mlp(), num_head_layers=0).frozen


# ----------------------------------------------------------------------------------------- load_partial


def test_load_partial_loads_the_body_and_skips_a_head_of_another_shape() -> None:
    source = mlp(seed=1, out=3)
    target = mlp(seed=2, out=5)
    head_before = target[4].weight.data.copy()
    report = load_partial(target, source.state_dict())
    assert report.loaded == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert report.mismatched == [("4.weight", (3, 8), (5, 8)), ("4.bias", (3,), (5,))]
    assert report.missing == [] and report.unexpected == []
    assert np.array_equal(target[0].weight.data, source[0].weight.data)
    assert np.array_equal(target[4].weight.data, head_before)
    text = str(report)
    assert "loaded 4 tensor(s)" in text and "'4.weight' is (3, 8) in the state dict, (5, 8) in the model" in text


def test_load_partial_renames_prefixes_and_reports_missing_and_unexpected() -> None:
    rng = np.random.default_rng(3)
    block = gw.Sequential(Linear(4, 4, rng=rng), BatchNorm1d(4))
    block[1].running_mean[...] = 7.0
    target = gw.Sequential(Residual(gw.Sequential(Linear(4, 4), BatchNorm1d(4))), Linear(4, 2))
    state = {**block.state_dict(), "extra.weight": np.zeros(3)}
    report = load_partial(target, state, prefix_map={"": "0.block.", "extra.": "gone."})
    assert report.renamed["0.weight"] == "0.block.0.weight" and report.renamed["extra.weight"] == "gone.weight"
    assert "0.block.1.running_mean" in report.loaded
    assert report.unexpected == ["gone.weight"]
    assert report.missing == ["1.weight", "1.bias"]
    assert np.all(target[0].block[1].running_mean == 7.0)
    assert np.array_equal(target[0].block[0].weight.data, block[0].weight.data)
    assert target[0].block[0].weight.dtype == np.float32  # the model's dtype is kept


def test_load_partial_strict_raises_and_changes_nothing() -> None:
    target = mlp(seed=2, out=5)
    before = target.state_dict()
    with pytest.raises(ValueError, match=r"'4\.weight': \(3, 8\) in the state dict, \(5, 8\) in the model"):
        load_partial(target, mlp(seed=1, out=3).state_dict(), strict=True)
    with pytest.raises(KeyError, match="missing keys"):
        load_partial(target, {"0.weight": np.zeros((8, 4))}, strict=True)
    after = target.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    report = load_partial(target, mlp(seed=1, out=5).state_dict(), strict=True)
    assert len(report.loaded) == 6


def test_load_partial_from_a_safetensors_file(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    source = mlp(seed=4)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    target = mlp(seed=5)
    assert isinstance(load_partial(target, tmp_path / "w.safetensors"), LoadReport)
    assert np.array_equal(target[2].weight.data, source[2].weight.data)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="bad.safetensors.*not a readable safetensors file"):
        load_partial(target, tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_partial(target, tmp_path / "nope.safetensors")


def test_two_keys_renamed_to_one_is_an_error() -> None:
    state = {"a.weight": np.zeros((8, 4)), "b.weight": np.zeros((8, 4))}
    with pytest.raises(ValueError, match="two state-dict keys"):
        load_partial(mlp(), state, prefix_map={"a.": "0.", "b.": "0."})


@pytest.mark.oracle
def test_a_torch_state_dict_loads_into_the_body() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())
    state = {k: v.detach().numpy() for k, v in t_model.state_dict().items()}
    model = mlp()
    report = load_partial(model, state)
    assert report.missing == ["4.weight", "4.bias"]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    body = gw.Sequential(*model.layers[:4])
    with torch.no_grad():
        expected = t_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(body(x), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------- replace_head


def test_replace_head_shares_the_body_and_names_the_head_last() -> None:
    model = mlp()
    head = Linear(8, 7)
    new = replace_head(model, head)
    assert len(new) == 5 and new[4] is head and new[0] is model[0]
    assert [n for n, _ in new.named_parameters()][-2:] == ["4.weight", "4.bias"]
    assert new(np.zeros((2, 4), dtype=np.float32)).shape == (2, 7)
    two = replace_head(model, gw.Sequential(Linear(8, 2)), num_layers=3)  # drop Linear, ReLU, Linear
    assert len(two) == 3 and [n for n, _ in two.named_parameters()][-1] == "2.0.bias"
    with pytest.raises(TypeError, match="Sequential"):
        replace_head(Linear(2, 2), Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_layers"):
        replace_head(model, head, num_layers=0)


# ----------------------------------------------------------------------------------------- GloVe


GLOVE = "the 0.1 0.2 -0.3\nof 1 2 3\n. . . 4.5 -1e-2 6\ncat -1.5 0 2.25\n"


def write(tmp_path: Path, text: str, name: str = "glove.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_glove_reads_every_word_in_file_order(tmp_path: Path) -> None:
    words, matrix = load_glove(write(tmp_path, GLOVE))
    assert words == ["the", "of", ". . .", "cat"]  # a token with spaces is read whole
    assert matrix.dtype == np.float32 and matrix.shape == (4, 3)
    np.testing.assert_array_equal(matrix[2], np.array([4.5, -1e-2, 6], dtype=np.float32))
    words2, m2 = load_glove(write(tmp_path, GLOVE), limit=2, dtype=np.float64)
    assert words2 == ["the", "of"] and m2.dtype == np.float64


def test_load_glove_with_a_vocabulary_and_oov_rows(tmp_path: Path) -> None:
    path = write(tmp_path, GLOVE)
    words, matrix = load_glove(path, vocab=["<pad>", "cat", "the", "zebra"], oov="zeros")
    assert words == ["<pad>", "cat", "the", "zebra"]
    np.testing.assert_array_equal(matrix[1], np.array([-1.5, 0, 2.25], dtype=np.float32))
    assert not matrix[0].any() and not matrix[3].any()
    _, rand = load_glove(path, vocab={"cat": 1, "zebra": 0}, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(rand[1], matrix[1])
    assert rand[0].any() and np.abs(rand[0]).max() < 20  # N(0, s^2), s the std of the vectors found

    embed = Embedding.from_pretrained(matrix, freeze=True)
    out = embed(np.array([[1, 2]]))
    np.testing.assert_array_equal(out[0, 1], np.array([0.1, 0.2, -0.3], dtype=np.float32))
    assert embed.frozen


def test_load_glove_skips_a_word2vec_header_and_keeps_the_first_duplicate(tmp_path: Path) -> None:
    words, matrix = load_glove(write(tmp_path, "3 2\na 1 2\nb 3 4\na 5 6\n"))
    assert words == ["a", "b"]
    np.testing.assert_array_equal(matrix, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("a 1 2\nb 1 2 3\n", {}, r"line 2 has 3 values after the word, expected 2"),
        ("a 1 2\nb 1 x\n", {}, r"line 2: 'x' is not a number"),
        ("a 1 2\n", {"dim": 3}, r"line 1 has 2 values after the word, expected 3"),
        ("", {}, "holds no vectors"),
        ("a 1 2\n", {"oov": "mean"}, "oov"),
        ("a 1 2\n", {"vocab": ["a", "a"]}, "appears twice"),
        ("a 1 2\n", {"vocab": {"a": 1}}, "0 .. len"),
        ("a 1 2\n", {"vocab": ["a"], "limit": 3}, "not both"),
    ],
)
def test_load_glove_errors_name_the_file_and_line(tmp_path: Path, text: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_glove(write(tmp_path, text), **kwargs)


def test_load_glove_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_glove(tmp_path / "missing.txt")


@given(
    vectors=st.dictionaries(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=8),
        st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=3, max_size=3),
        min_size=1,
        max_size=12,
    )
)
def test_load_glove_round_trips_any_file(vectors: dict[str, list[float]]) -> None:
    import tempfile

    text = "".join(f"{w} {' '.join(repr(v) for v in vec)}\n" for w, vec in vectors.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.txt"
        path.write_text(text, encoding="utf-8")
        words, matrix = load_glove(path, dtype=np.float64)
        assert words == list(vectors)
        np.testing.assert_array_equal(matrix, np.array(list(vectors.values())))
        reversed_words, rows = load_glove(path, vocab=list(vectors)[::-1], dtype=np.float64)
        assert reversed_words == list(vectors)[::-1]
        np.testing.assert_array_equal(rows, np.array(list(vectors.values()))[::-1])


# ----------------------------------------------------------------------------------------- the recipe


def test_freeze_train_head_unfreeze_train_all_on_mnist1d() -> None:
    x, y, x_test, y_test = load_mnist1d()
    loss = SoftmaxCrossEntropy()

    # Pretrain on digits 0-4.
    rng = np.random.default_rng(0)
    pretrained = gw.Sequential(
        Linear(40, 128, rng=rng), ReLU(), Linear(128, 128, rng=rng), ReLU(), Linear(128, 5, rng=rng)
    )
    low = y < 5
    gw.Trainer(pretrained, loss, gw.optim.Adam(pretrained.parameters(), lr=3e-3), progress=False).fit(
        DataLoader(x[low], y[low], batch_size=100, shuffle=True, rng=np.random.default_rng(1)), epochs=15
    )

    # Transfer to digits 5-9 with only 500 training examples and a new head.
    few = np.flatnonzero(y >= 5)[:500]
    train = DataLoader(x[few], y[few] - 5, batch_size=50, shuffle=True, rng=np.random.default_rng(2))
    high = y_test >= 5
    test = DataLoader(x_test[high], y_test[high] - 5, batch_size=1000)
    model = replace_head(copy.deepcopy(pretrained), Linear(128, 5, rng=np.random.default_rng(3)))
    freeze_body(model)
    body_before = {k: v for k, v in model.state_dict().items() if not k.startswith("4.")}
    opt = gw.optim.Adam(model.parameters(), lr=3e-3)
    trainer = gw.Trainer(model, loss, opt, metrics=[accuracy], progress=False)
    trainer.fit(train, epochs=10)
    head_only = trainer.evaluate(test)["accuracy"]
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in body_before.items())
    assert {p.name for p in opt.state} == {"4.weight", "4.bias"}

    # Unfreeze and fine-tune everything, earlier layers with smaller learning rates.
    model.unfreeze()
    groups = layer_groups(model, {"0.": 3e-4, "2.": 1e-3, "4.": 3e-3})
    trainer = gw.Trainer(model, loss, gw.optim.Adam(groups, lr=3e-3), metrics=[accuracy], progress=False)
    trainer.fit(train, epochs=10)
    fine_tuned = trainer.evaluate(test)["accuracy"]
    assert not np.array_equal(model.state_dict()["0.weight"], body_before["0.weight"])

    # The same network from scratch, same data and number of epochs.
    rng = np.random.default_rng(3)
    scratch = gw.Sequential(Linear(40, 128, rng=rng), ReLU(), Linear(128, 128, rng=rng), ReLU(), Linear(128, 5, rng=rng))
    trainer = gw.Trainer(scratch, loss, gw.optim.Adam(scratch.parameters(), lr=3e-3), metrics=[accuracy], progress=False)
    trainer.fit(train, epochs=20)
    from_scratch = trainer.evaluate(test)["accuracy"]

    # Measured: head only 0.67, fine-tuned 0.70, from scratch 0.57 (chance 0.2).
    assert head_only > 0.55
    assert fine_tuned >= head_only - 0.01
    assert fine_tuned > from_scratch + 0.05
