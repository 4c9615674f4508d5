"""Tests of gradwise/io.py: safetensors save/load, clear errors on bad files, and interop with
torch.nn in both directions (marked `oracle`)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import rel_err
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradwise as gw
from gradwise.io import architecture, load, read_metadata, save
from gradwise.layers import (
    LSTM,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
)


def _mlp(seed: int = 0, dtype: Any = np.float32, hidden: int = 16) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    return gw.Sequential(Linear(4, hidden, rng=rng, dtype=dtype), ReLU(), Linear(hidden, 3, rng=rng, dtype=dtype))


def _with_bn(seed: int = 0) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    model = gw.Sequential(Linear(4, 6, rng=rng), BatchNorm1d(6), ReLU(), Linear(6, 2, rng=rng))
    model.forward(rng.normal(size=(10, 4)).astype(np.float32))  # running stats away from their init
    return model


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------ round trip


def test_save_load_round_trip_keeps_names_order_dtypes_and_values(tmp_path: Path) -> None:
    model = _with_bn()
    path = save(model, tmp_path / "m.safetensors", metadata={"epoch": "7"})
    assert path == tmp_path / "m.safetensors"
    state = load(path)
    assert _same(state, model.state_dict())
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"].shape == ()
    meta = read_metadata(path)
    assert meta["epoch"] == "7" and meta["format"] == "pt" and meta["gradwise_version"] == gw.__version__
    fingerprint = [(n, tuple(s), d) for n, s, d in json.loads(meta["gradwise_architecture"])]
    assert fingerprint == architecture(model.state_dict())
    assert fingerprint[0] == ("0.weight", (6, 4), "float32")
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_into_a_model_keeps_its_parameters_and_dtype(tmp_path: Path, dtype: Any) -> None:
    source = _mlp(seed=1, dtype=np.float64)
    save(source, tmp_path / "m.safetensors")
    target = _mlp(seed=2, dtype=dtype)
    params = target.parameters()
    load(tmp_path / "m.safetensors", target)
    assert [id(p) for p in target.parameters()] == [id(p) for p in params]  # an optimizer stays valid
    assert all(p.dtype == dtype for p in params)
    for (name, p), expected in zip(target.named_parameters(), source.state_dict().values()):
        assert np.array_equal(p.data, expected.astype(dtype)), name


def test_save_accepts_a_state_dict(tmp_path: Path) -> None:
    state = {"w": np.arange(6, dtype=np.float64).reshape(2, 3).T, "n": np.array(3)}  # a non-contiguous view
    save(state, tmp_path / "s.safetensors")
    back = load(tmp_path / "s.safetensors")
    assert _same(back, {"w": np.ascontiguousarray(state["w"]), "n": state["n"]})


@pytest.mark.parametrize(
    ("metadata", "error", "match"),
    [
        ({"epoch": 3}, TypeError, "str to str"),
        ({"format": "mine"}, ValueError, "'format' is reserved"),
        ({"gradwise_version": "9"}, ValueError, "reserved"),
    ],
)
def test_save_checks_metadata(tmp_path: Path, metadata: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        save(_mlp(), tmp_path / "m.safetensors", metadata=metadata)
    assert not (tmp_path / "m.safetensors").exists()


def test_save_refuses_what_a_weights_file_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'x' has dtype object"):
        save({"x": np.array([None])}, tmp_path / "m.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save(_mlp(), tmp_path / "missing" / "m.safetensors")


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(_mlp(seed=1), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save(_mlp(seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


# ------------------------------------------------------------------------------------ bad files


def _saved(tmp_path: Path) -> tuple[Path, bytes]:
    path = save(_with_bn(seed=1), tmp_path / "good.safetensors")
    return path, path.read_bytes()


def _bad_load_leaves_model_unchanged(path: Path, match: str) -> None:
    model = _with_bn(seed=5)
    before = model.state_dict()
    with pytest.raises(ValueError, match=match) as info:
        load(path, model)
    assert str(info.value).startswith(f"{path}: ")
    assert _same(model.state_dict(), before)


def test_a_text_file_is_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("epoch,loss\n0,0.5\n1,0.25\n")
    _bad_load_leaves_model_unchanged(path, "not a safetensors file.*text file")


def test_an_empty_file_is_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    _bad_load_leaves_model_unchanged(path, "not a safetensors file: it has 0 bytes")


def test_a_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"0.weight": Payload()}))
    _bad_load_leaves_model_unchanged(path, "not a safetensors file")
    assert not marker.exists()


@pytest.mark.parametrize(("where", "match"), [("header", "truncated.*header needs"), ("data", "truncated.*tensor data")])
def test_a_truncated_file_says_so(tmp_path: Path, where: str, match: str) -> None:
    _, data = _saved(tmp_path)
    cut = 40 if where == "header" else len(data) - 3
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[:cut])
    _bad_load_leaves_model_unchanged(bad, match)


def test_flipped_bytes_in_the_tensor_data_are_caught_by_the_checksum(tmp_path: Path) -> None:
    _, data = _saved(tmp_path)
    damaged = bytearray(data)
    damaged[-10] ^= 0x40
    bad = tmp_path / "damaged.safetensors"
    bad.write_bytes(bytes(damaged))
    _bad_load_leaves_model_unchanged(bad, "corrupted.*checksum")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_every_truncation_is_a_clear_error(tmp_path: Path, fraction: float) -> None:
    path = tmp_path / "good.safetensors"
    if not path.exists():
        save(_with_bn(seed=1), path)
    data = path.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: int(fraction * len(data))])
    with pytest.raises(ValueError, match=f"^{bad}: (not a|truncated|corrupted)"):
        load(bad)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_damaged_byte_is_an_error_or_changes_nothing(tmp_path: Path, position: float, mask: int) -> None:
    path = tmp_path / "good.safetensors"
    if not path.exists():
        save(_with_bn(seed=1), path)
    data = bytearray(path.read_bytes())
    data[int(position * len(data))] ^= mask
    bad = tmp_path / "damaged.safetensors"
    bad.write_bytes(bytes(data))
    try:
        state = load(bad)
    except ValueError as err:
        assert str(err).startswith(f"{bad}: ")
    else:  # only metadata text or header padding was hit: the weights are intact (a damaged
        # fingerprint may change the order they come back in)
        good = load(path)
        assert _same(dict(sorted(state.items())), dict(sorted(good.items())))


def test_a_checkpoint_of_another_architecture_names_the_mismatch(tmp_path: Path) -> None:
    path = save(_mlp(hidden=16), tmp_path / "mlp16.safetensors")
    model = _mlp(hidden=32, seed=3)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"'0\.weight' has shape \(16, 4\) in the file but \(32, 4\) in the model") as info:
        load(path, model)
    assert str(info.value).startswith(f"{path}: the weights (saved by gradwise {gw.__version__}) do not fit Sequential")
    assert _same(model.state_dict(), before)
    _bad_load_leaves_model_unchanged(path, r"missing keys \['1\.weight', '1\.bias', '1\.running_mean'.*unexpected keys \['2\.weight'")


def test_integer_and_float_entries_do_not_mix(tmp_path: Path) -> None:
    state = _with_bn().state_dict()
    state["1.num_batches_tracked"] = np.array(1.5)
    path = save(state, tmp_path / "m.safetensors")
    _bad_load_leaves_model_unchanged(path, "'1.num_batches_tracked' is float64 in the file but int64 in the model")


def test_non_strict_load_fills_a_backbone_and_keeps_a_new_head(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    backbone = gw.Sequential(Linear(4, 8, rng=rng), ReLU(), Linear(8, 3, rng=rng))
    path = save(backbone, tmp_path / "b.safetensors")
    model = gw.Sequential(Linear(4, 8, rng=rng), ReLU(), Linear(8, 5, rng=rng))
    head = model.state_dict()
    with pytest.raises(ValueError, match=r"'2\.weight' has shape \(3, 8\)"):  # shapes still must agree
        load(path, model, strict=False)
    trimmed = {k: v for k, v in load(path).items() if k.startswith("0.")}
    save(trimmed, tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match=r"missing keys \['2\.weight', '2\.bias'\]"):
        load(tmp_path / "t.safetensors", model)
    load(tmp_path / "t.safetensors", model, strict=False)
    after = model.state_dict()
    assert np.array_equal(after["0.weight"], backbone[0].weight.data)
    assert np.array_equal(after["2.weight"], head["2.weight"])


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.safetensors")


# ------------------------------------------------------------------------------------ torch interop


def _torch_mlp(torch: Any) -> Any:
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _cnn(seed: int = 0) -> gw.Sequential:
    rng = np.random.default_rng(seed)
    model = gw.Sequential(
        Conv2d(2, 4, 3, padding=1, rng=rng),
        BatchNorm2d(4),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(4 * 4 * 4, 5, rng=rng),
    )
    bn = model[1]
    bn.weight.data[...] = rng.uniform(0.5, 1.5, 4)
    bn.bias.data[...] = rng.normal(size=4)
    for _ in range(3):  # running statistics and num_batches_tracked away from their init
        model.forward(rng.normal(1.0, 2.0, size=(6, 2, 8, 8)).astype(np.float32))
    return model.eval()


def _torch_cnn(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5)
    )


def _lstm(seed: int = 0) -> LSTM:
    return LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=True, rng=np.random.default_rng(seed))


def _torch_lstm(torch: Any) -> Any:
    return torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=True)


def _torch_out(module: Any, x: np.ndarray, torch: Any) -> np.ndarray:
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple) else out).numpy()  # LSTM: (output, (h_n, c_n))


CASES = {
    "mlp": (lambda: _mlp(seed=1), _torch_mlp, (5, 4)),
    "cnn_batchnorm": (lambda: _cnn(seed=1), _torch_cnn, (6, 2, 8, 8)),
    "lstm": (lambda: _lstm(seed=1), _torch_lstm, (4, 7, 3)),
}


@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_saved_by_gradwise_load_into_torch(tmp_path: Path, case: str, tol: Any) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    build, build_torch, shape = CASES[case]
    model = build().eval()
    path = save(model, tmp_path / f"{case}.safetensors")
    twin = build_torch(torch).eval()
    twin.load_state_dict(load_file(str(path)))  # strict: every name and shape matches
    state = model.state_dict()
    for name, tensor in twin.state_dict().items():
        assert np.array_equal(tensor.numpy(), state[name]), name
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    assert rel_err(model.forward(x), _torch_out(twin, x, torch)) < tol.oracle


@pytest.mark.oracle
@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_saved_by_torch_load_into_gradwise(tmp_path: Path, case: str, tol: Any) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    build, build_torch, shape = CASES[case]
    torch.manual_seed(0)
    twin = build_torch(torch)
    if case == "cnn_batchnorm":
        with torch.no_grad():  # train-mode passes: running statistics and num_batches_tracked move
            for _ in range(3):
                twin(torch.randn(6, 2, 8, 8) * 2 + 1)
            twin[1].weight.uniform_(0.5, 1.5)
            twin[1].bias.normal_()
    twin.eval()
    path = tmp_path / f"{case}_torch.safetensors"
    save_file({k: v.contiguous() for k, v in twin.state_dict().items()}, str(path))
    model = build()
    state = load(path, model)
    model.eval()
    assert sorted(state) == sorted(model.state_dict())
    if case == "cnn_batchnorm":
        assert int(model[1].num_batches_tracked) == 3
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    assert rel_err(model.forward(x), _torch_out(twin, x, torch)) < tol.oracle
