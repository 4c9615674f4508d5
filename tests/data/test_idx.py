"""IDX and npz files: exact round trips, and every kind of damage named with the file and offset."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradwise.data.idx import IDX_TYPES, read_idx, read_npz_array, write_idx
from gradwise.data.sources import DataFormatError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
shapes = st.lists(st.integers(0, 6), min_size=1, max_size=4).map(tuple)


def _array(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def _offset(message: str) -> int:
    """The byte offset a message names (the last 'byte N' in it)."""
    found = re.findall(r"bytes? (\d+)", message)
    assert found, message
    return int(found[-1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_type(tmp_path, dtype, suffix):
    a = _array((3, 4, 5), dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


def test_the_header_is_big_endian_as_the_format_says(tmp_path):
    path = write_idx(tmp_path / "x", np.arange(6, dtype=np.int32).reshape(2, 3))
    data = path.read_bytes()
    assert data[:4] == b"\x00\x00\x0c\x02"  # int32, 2 dimensions
    assert struct.unpack(">II", data[4:12]) == (2, 3)
    assert struct.unpack(">6i", data[12:]) == tuple(range(6))


def test_gzip_output_is_reproducible(tmp_path):
    a = _array((4, 28, 28), np.uint8)
    assert write_idx(tmp_path / "a.gz", a).read_bytes() == write_idx(tmp_path / "b.gz", a).read_bytes()


@given(shape=shapes, code=st.sampled_from(sorted(IDX_TYPES)), data=st.data())
def test_any_truncation_of_a_raw_file_names_the_offset(tmp_path_factory, shape, code, data):
    dtype = IDX_TYPES[code].newbyteorder("=")
    path = write_idx(tmp_path_factory.mktemp("idx") / "a-idx", _array(shape, dtype.type))
    full = path.read_bytes()
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    path.write_bytes(full[:cut])
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert _offset(message) == cut


@given(shape=shapes, extra=st.integers(1, 9))
def test_bytes_beyond_the_header_dimensions_are_rejected(tmp_path_factory, shape, extra):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a-idx", _array(shape, np.uint8))
    expected_end = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"\x07" * extra)
    with pytest.raises(DataFormatError, match=f"at byte {expected_end}, but {extra} more bytes follow"):
        read_idx(path)


@given(shape=shapes.filter(lambda s: np.prod(s) > 0), data=st.data())
def test_any_truncation_of_a_gzip_file_is_reported(tmp_path_factory, shape, data):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a-idx.gz", _array(shape, np.float64))
    full = path.read_bytes()
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    path.write_bytes(full[:cut])
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "gzip" in message
    if cut >= 2:
        assert f"ends at byte {cut}" in message


@given(data=st.data())
def test_a_damaged_gzip_body_is_caught(tmp_path_factory, data):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a-idx3-ubyte.gz", _array((20, 28, 28), np.uint8))
    raw = bytearray(path.read_bytes())
    at = data.draw(st.integers(10, len(raw) - 1), label="at")  # past the gzip header (its mtime is not checked)
    raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    assert str(info.value).startswith(str(path))


def test_the_crc_catches_damage_the_decompressor_does_not(tmp_path):
    path = write_idx(tmp_path / "a.gz", np.zeros(100_000, np.uint8))
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 1  # the CRC-32 in the trailer
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match=r"compressed bytes \d+-\d+: the CRC-32 check failed"):
        read_idx(path)


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        (b"\x1f\x8b\x08\x03", r"bad IDX magic number 0x1f8b0803 at byte 0"),
        (b"\x00\x01\x08\x01", r"bad IDX magic number 0x00010801 at byte 0"),
        (b"\x00\x00\x07\x01", r"unknown data type 0x07 at byte 2"),
        (b"\x00\x00\x08\x03\x00\x00", r"declares 3 dimensions \(bytes 4-15\) but the data ends at byte 6"),
        (b"\x00", r"too short for an IDX file: it ends at byte 1, inside the 4-byte magic number"),
    ],
)
def test_bad_headers(tmp_path, header, pattern):
    path = tmp_path / "bad-idx"
    path.write_bytes(header)
    with pytest.raises(DataFormatError, match=pattern):
        read_idx(path)


def test_offsets_in_a_gzip_file_are_of_the_decompressed_data(tmp_path):
    path = tmp_path / "bad-idx.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01" * 7))
    with pytest.raises(DataFormatError, match="need 18 bytes, but the data ends at decompressed byte 15"):
        read_idx(path)


def test_a_raw_file_named_gz_is_not_taken_for_gzip(tmp_path):
    path = tmp_path / "a.gz"
    write_idx(tmp_path / "a", np.zeros(3, np.uint8)).rename(path)
    with pytest.raises(DataFormatError, match="not a gzip file: it starts with bytes 00 00"):
        read_idx(path)


def test_concatenated_members_and_zero_padding_read_like_gzip_does(tmp_path):
    raw = write_idx(tmp_path / "a", np.arange(50, dtype=np.uint8)).read_bytes()
    path = tmp_path / "b.gz"
    path.write_bytes(gzip.compress(raw[:20]) + gzip.compress(raw[20:]) + b"\x00" * 16)
    np.testing.assert_array_equal(read_idx(path), np.arange(50))
    path.write_bytes(gzip.compress(raw) + b"junk")
    with pytest.raises(DataFormatError, match=r"4 unexpected bytes after the gzip stream, from byte \d+"):
        read_idx(path)


def test_write_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="dtype int64 has no IDX type code"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))


# -------------------------------------------------------------------------------------------- npz


def test_npz_round_trip(tmp_path):
    a = _array((5, 28, 28), np.uint8)
    np.savez(tmp_path / "a.npz", a)
    np.testing.assert_array_equal(read_npz_array(tmp_path / "a.npz"), a)
    np.savez_compressed(tmp_path / "b.npz", images=a)
    np.testing.assert_array_equal(read_npz_array(tmp_path / "b.npz"), a)


@given(data=st.data())
def test_any_truncation_of_an_npz_file_is_reported(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "a.npz"
    np.savez(path, _array((4, 7, 7), np.uint8))
    full = path.read_bytes()
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    path.write_bytes(full[:cut])
    with pytest.raises(DataFormatError) as info:
        read_npz_array(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda p: p.write_bytes(b""), "not an npz file: it is empty"),
        (lambda p: p.write_bytes(b"hello world"), "not an npz file: it starts with bytes 68 65 6c 6c"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p), "a bare .npy"),
        (lambda p: np.savez(p, a=np.zeros(2), b=np.zeros(2)), r"holding one array, found 2: \['a', 'b'\]"),
        (
            lambda p: np.savez(p, np.array([{"x": 1}], dtype=object)),
            "cannot be read: Object arrays cannot be loaded when allow_pickle=False",
        ),
    ],
)
def test_bad_npz_files(tmp_path, make, pattern):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DataFormatError, match=pattern):
        read_npz_array(path)


def test_a_damaged_npz_member_fails_its_crc(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, np.zeros((50, 28, 28), np.uint8))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="Bad CRC-32"):
        read_npz_array(path)


def test_messages_name_the_file(tmp_path):
    path = Path(tmp_path) / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + b"\x00" * 100)
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    assert str(info.value) == (
        f"{path}: truncated IDX data: the header's dimensions 2x28x28 (1-byte items) need 1584 bytes, "
        "but the data ends at byte 116 (1468 bytes missing)"
    )
