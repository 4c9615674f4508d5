"""Array files of the MNIST family: IDX (raw or gzip) and single-array npz, read strictly.

IDX is the format of LeCun's MNIST files (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE
FORMAT") and of Fashion-MNIST and KMNIST's IDX copies. A file is

=========  ===========================================================================
byte 0-1   zero
byte 2     the type of the data: 0x08 ubyte, 0x09 sbyte, 0x0B short (2 bytes), 0x0C int (4),
           0x0D float (4), 0x0E double (8)
byte 3     the number of dimensions d
byte 4..   d sizes, each a big-endian 32-bit unsigned int
then       the data, in C order, big-endian
=========  ===========================================================================

so MNIST's images start with the magic number 0x00000803 and its labels with 0x00000801.

`read_idx` checks every part of that before building an array and raises `DataFormatError` naming
the file and the byte offset where it stops making sense: a gzip stream that ends early or does
not decompress, a wrong magic number, a header cut short, a payload shorter or longer than the
header's dimensions say. Offsets inside a ``.gz`` file are offsets of the decompressed IDX data,
except for gzip errors, which give the offset in the compressed file. `read_npz_array` does the
same for a one-array ``.npz`` (KMNIST's format), read with ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from gradwise.data.sources import DataFormatError
from gradwise.fileio import atomic_write_bytes

__all__ = ["IDX_TYPES", "read_idx", "read_npz_array", "write_idx"]

# IDX type code -> big-endian dtype of the data.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_NAMES = "0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64"
_GZIP_MAGIC = b"\x1f\x8b"
# Compressed bytes fed to zlib at a time: a corrupt stream is then located to within this many bytes.
_CHUNK = 1 << 16


def _gunzip(raw: bytes | bytearray, name: str) -> bytearray:
    """Decompress every gzip member of `raw`; any damage raises `DataFormatError` with its offset."""
    if raw[:2] != _GZIP_MAGIC:
        raise DataFormatError(
            f"{name}: not a gzip file: it starts with bytes {bytes(raw[:2]).hex(' ') or '(none)'} instead of 1f 8b"
        )
    out = bytearray()
    pos = 0
    while True:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer, CRC-32 and length checked
        end = pos
        while not d.eof and end < len(raw):
            chunk = raw[end : end + _CHUNK]
            try:
                out += d.decompress(chunk)
            except zlib.error as e:
                # A flipped bit in deflate data often decodes to wrong bytes that only the CRC-32
                # in the gzip trailer catches, at the end of the stream.
                what = "the CRC-32 check failed (damaged data)" if "incorrect data check" in str(e) else str(e)
                raise DataFormatError(
                    f"{name}: corrupt gzip data in compressed bytes {end}-{end + len(chunk) - 1}: {what}"
                ) from None
            end += len(chunk)
        if not d.eof:
            raise DataFormatError(
                f"{name}: truncated gzip file: the compressed stream ends at byte {len(raw)} before its end "
                f"marker ({len(out)} bytes decompressed so far)"
            )
        pos = end - len(d.unused_data)
        rest = raw[pos:]
        if not rest or not any(rest):
            return out  # trailing zero padding is allowed, as the gzip tool allows it
        if rest[:2] != _GZIP_MAGIC:
            raise DataFormatError(f"{name}: {len(rest)} unexpected bytes after the gzip stream, from byte {pos}")


def _parse_idx(data: bytes | bytearray, name: str) -> np.ndarray:
    at = "byte" if not name.endswith(".gz") else "decompressed byte"
    size = len(data)
    if size < 4:
        raise DataFormatError(
            f"{name}: too short for an IDX file: it ends at {at} {size}, inside the 4-byte magic number"
        )
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0:
        raise DataFormatError(
            f"{name}: bad IDX magic number 0x{magic:08x} at {at} 0 (an IDX file starts with two zero bytes, "
            f"a type code and the number of dimensions: MNIST images 0x00000803, labels 0x00000801)"
        )
    if data[2] not in IDX_TYPES:
        raise DataFormatError(
            f"{name}: bad IDX magic number 0x{magic:08x}: unknown data type 0x{data[2]:02x} at {at} 2 "
            f"(known: {_TYPE_NAMES})"
        )
    dtype = IDX_TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if size < header:
        raise DataFormatError(
            f"{name}: truncated IDX header: it declares {ndim} dimensions ({at}s 4-{header - 1}) "
            f"but the data ends at {at} {size}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(dims, dtype=np.int64)) if ndim else 1
    expected = header + count * dtype.itemsize
    shape = "x".join(map(str, dims)) or "scalar"
    if size < expected:
        raise DataFormatError(
            f"{name}: truncated IDX data: the header's dimensions {shape} ({dtype.itemsize}-byte items) need "
            f"{expected} bytes, but the data ends at {at} {size} ({expected - size} bytes missing)"
        )
    if size > expected:
        raise DataFormatError(
            f"{name}: the IDX header's dimensions {shape} ({dtype.itemsize}-byte items) end the data at {at} "
            f"{expected}, but {size - expected} more bytes follow"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    native = dtype.newbyteorder("=")
    # A bytearray buffer is writable, so ubyte data needs no copy; wider types are converted to native order.
    return array.view(native) if dtype.itemsize == 1 else array.astype(native)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (a name ending in ``.gz``).

    Parameters
    ----------
    path : path-like
        The file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    np.ndarray
        The array, of the shape the header declares (MNIST images ``(N, 28, 28)`` uint8, labels
        ``(N,)`` uint8), in native byte order, writable and owning nothing else.

    Raises
    ------
    DataFormatError
        A damaged gzip stream (the compressed byte offset), a bad magic number, a header cut short,
        a payload that does not match the header's dimensions (the byte offset, decompressed).
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    name = str(path)
    with open(path, "rb") as f:
        raw = bytearray(os.fstat(f.fileno()).st_size)
        got = f.readinto(raw)
    del raw[got:]
    data = _gunzip(raw, name) if name.endswith(".gz") else raw
    return _parse_idx(data, name)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write `array` as an IDX file, gzip-compressed when `path` ends in ``.gz``, atomically.

    Parameters
    ----------
    path : path-like
        The file to write; its directory must exist.
    array : np.ndarray
        uint8, int8, int16, int32, float32 or float64, at most 255 dimensions of at most 2**32 - 1.

    Returns
    -------
    Path
        `path`.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_TYPES.items()}
    code = codes.get(array.dtype.str[1:])
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code (known: {_TYPE_NAMES})")
    if array.ndim > 255 or any(n >= 2**32 for n in array.shape):
        raise ValueError(f"write_idx: shape {array.shape} does not fit an IDX header")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)  # mtime 0: the same array always gives the same bytes
    return atomic_write_bytes(path, data)


def read_npz_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the one array of a ``.npz`` file (``np.savez(path, array)``, KMNIST's format).

    Parameters
    ----------
    path : path-like
        The file; it is read with ``allow_pickle=False``, so a file holding pickled objects is
        rejected rather than executed.

    Returns
    -------
    np.ndarray
        The array (any name: KMNIST's is ``arr_0``).

    Raises
    ------
    DataFormatError
        Not a zip archive (or cut short: its directory at the end is missing), a member that fails
        its CRC check or does not decompress, a member that is not a valid ``.npy``, pickled data,
        or not exactly one array.
    """
    path = Path(path)
    name = str(path)
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise DataFormatError(f"{name}: a bare .npy array, not an npz archive (save it with np.savez)")
    if not head.startswith(b"PK"):
        what = f"starts with bytes {head[:4].hex(' ')}" if head else "is empty"
        raise DataFormatError(f"{name}: not an npz file: it {what} instead of PK (a zip archive)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        # A zip cut short loses its central directory, which sits at the end of the file.
        raise DataFormatError(f"{name}: not a valid npz (zip) file, truncated or damaged: {e}") from None
    with loaded as archive:
        keys = list(archive.files)
        if len(keys) != 1:
            raise DataFormatError(f"{name}: expected an npz file holding one array, found {len(keys)}: {keys}")
        try:
            return archive[keys[0]]
        except (ValueError, EOFError, OSError, zlib.error, zipfile.BadZipFile) as e:
            raise DataFormatError(f"{name}: the array {keys[0]!r} in this npz file cannot be read: {e}") from None
