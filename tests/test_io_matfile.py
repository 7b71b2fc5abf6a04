"""The small MATLAB v5 reader (pipeline.io.matfile.read_mat5) against scipy's general reader, on
every field: generated rig files of both tasks and another protocol, the real files, compressed
copies, and odd shapes and types; what it leaves to scipy still reads (no database)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from pipeline.io import matfile
from pipeline.io.matfile import read_mat, read_mat5
from pipeline.synthetic.bpod_delay_response import (
    write_mtl_session_file,
    write_other_protocol_file,
    write_session_file,
)


def _same(a, b, where: str = "") -> None:
    """a is b as scipy gives it: the same types, dtypes, shapes and values, all the way down."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and list(a) == list(b), where
        for k in b:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        if b.dtype == object:
            for i, (x, y) in enumerate(zip(a.flat, b.flat)):
                _same(x, y, f"{where}{{{i}}}")
        else:
            assert np.array_equal(a, b, equal_nan=b.dtype.kind in "fc"), where
            assert a.flags.writeable, where
    else:
        assert type(a) is type(b), (where, type(a), type(b))
        assert a == b or (a != a and b != b), where


def _scipy(path) -> dict:
    return {k: v for k, v in sio.loadmat(str(path), simplify_cells=True).items() if not k.startswith("__")}


def _check(path) -> None:
    _same(read_mat5(path), _scipy(path), path.name)
    _same(read_mat(path), _scipy(path), path.name)


def _compressed(path, tmp_path):
    """The file's variables written again with zlib compression (as MATLAB's -v7 does)."""
    out = tmp_path / f"z_{path.name}"
    data = {k: v for k, v in sio.loadmat(str(path)).items() if not k.startswith("__")}
    sio.savemat(str(out), data, do_compression=True)
    return out


def test_generated_rig_files(tmp_path):
    files = [
        write_session_file(tmp_path, n_trials=30, seed=3, abort_every=7).path,
        write_session_file(tmp_path, h2o="dm2", n_trials=1, seed=4).path,
        write_mtl_session_file(tmp_path, n_trials=25, seed=5).path,
        write_other_protocol_file(tmp_path),
    ]
    for f in files:
        _check(f)
        _check(_compressed(f, tmp_path))


def test_real_files(real_data, tmp_path):
    files = sorted(real_data.glob("**/*.mat"))
    assert files
    for f in files:
        _check(f)
        try:
            z = _compressed(f, tmp_path)
        except TypeError:  # scipy cannot write some of what it reads back (empty cells)
            continue
        _check(z)


def test_shapes_and_types(tmp_path):
    data = dict(
        text="hello",
        empty_text="",
        text_rows=np.array(["abc", "def"]),
        unicode="ünï ☃",
        empty=np.zeros((0, 2)),
        empty_u8=np.zeros((0, 3), dtype=np.uint8),
        empty3=np.zeros((2, 0, 3)),
        scalar=np.array([[3.0]]),
        row=np.array([[1.0, 2.0, 300.0]]),
        column=np.array([[1.0], [2.0]]),
        matrix=np.arange(6.0).reshape(3, 2),
        cube=np.arange(24.0).reshape(2, 3, 4),
        nan=np.array([[np.nan, 1.0]]),
        u8=np.array([[1, 2]], dtype=np.uint8),
        i16=np.array([[-1, -2]], dtype=np.int16),
        i32=np.array([[7]], dtype=np.int32),
        i64=np.array([[2**40]], dtype=np.int64),
        f32=np.array([[1.5]], dtype=np.float32),
        logical=np.array([[True, False]]),
        logical1=np.array([[True]]),
        cell=np.array([[np.array([[1.0]]), "x"]], dtype=object),
        cell_column=np.array([[1.0], ["ab"]], dtype=object),
        empty_cell=np.empty((0, 0), dtype=object),
        struct={"a": 1.0, "b": "x", "c": np.array([[{"x": "y"}]], dtype=object), "e": np.zeros((0, 0))},
        struct_array=np.array([[{"a": 1.0}, {"a": 2.0}]], dtype=object),
        cells_of_structs=np.array([[{"a": 1.0}, {"a": "z"}]], dtype=object),
    )
    for compress in (False, True):
        path = tmp_path / f"shapes{int(compress)}.mat"
        sio.savemat(str(path), data, do_compression=compress)
        _check(path)
        assert read_mat5(path, variable_names=["row", "struct"]).keys() == {"row", "struct"}


def test_left_to_scipy(tmp_path):
    """Complex numbers, sparse matrices and damaged files: read_mat5 declines, read_mat gives scipy's."""
    import scipy.sparse

    path = tmp_path / "other.mat"
    sio.savemat(str(path), dict(z=np.array([[1 + 2j]]), s=scipy.sparse.eye(3).tocsc(), x=np.array([[1.0]])))
    with pytest.raises(matfile._Unsupported):
        read_mat5(path)
    got, want = read_mat(path), _scipy(path)
    assert got["z"] == want["z"] and got["x"] == want["x"] and (got["s"] != want["s"]).nnz == 0

    rig = write_session_file(tmp_path / "rig", n_trials=5).path
    cut = tmp_path / "cut.mat"
    cut.write_bytes(rig.read_bytes()[: rig.stat().st_size // 2])
    with pytest.raises(matfile.MatFileError, match="cut.mat"):
        read_mat(cut)


def test_fields_read_at_once(tmp_path):
    """The fast paths inside structs and cells: scalars and vectors of every stored type (small
    elements too), text, structs of equal double vectors (a trial's States) and of unequal ones."""
    types = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
    mixed = {f"s_{t}": np.array([[7]], dtype=t) for t in types}
    mixed |= {f"v_{t}": np.array([[1, 2, 3]], dtype=t) for t in types}
    mixed |= {"text": "abc", "one": "x", "empty": "", "col": np.array([[1.0], [2.0]]), "e": np.zeros((1, 0))}
    trial = {"States": {"A": np.array([[0.0, 1.0]]), "B": np.array([[np.nan, np.nan]])}, "Events": {"Tup": 1.5}}
    data = dict(
        mixed=mixed,
        states={"A": np.array([[0.5, 1.0]]), "B": np.array([[np.nan, np.nan]]), "C": np.array([[2.0, 3.0]])},
        scalars={"a": 1.0, "b": 2.5, "c": np.nan},
        singles={"a": np.array([[1.0]], dtype=np.float32), "b": np.array([[2.0]], dtype=np.float32)},
        uneven={"A": np.array([[0.5, 1.0]]), "B": np.array([[1.0, 2.0], [3.0, 4.0]])},
        trials=np.array([[trial, {**trial, "States": {"A": np.array([[1.0, 2.0], [3.0, 4.0]])}}]], dtype=object),
        settings=np.array([[{"GUI": {"P": 5.0, "id": "0101"}}, {"GUI": {"P": 3.0, "id": "1100"}}]], dtype=object),
    )
    for compress in (False, True):
        path = tmp_path / f"fields{int(compress)}.mat"
        sio.savemat(str(path), data, do_compression=compress)
        _check(path)
    states = read_mat5(path)["states"]
    assert all(v.flags.writeable for v in states.values())


def test_struct_in_a_cell_after_other_values_is_left_to_scipy(tmp_path):
    """scipy's simplify_cells keeps a struct that is not a cell's first element as a mat_struct:
    read_mat5 declines, read_mat gives scipy's."""
    path = tmp_path / "later.mat"
    sio.savemat(str(path), dict(c=np.array([[1.0, {"a": 1.0}]], dtype=object)))
    with pytest.raises(matfile._Unsupported):
        read_mat5(path)
    assert type(read_mat(path)["c"][1]).__name__ == "mat_struct"


def test_reading_pauses_the_garbage_collector_and_restores_it(tmp_path):
    import gc

    path = write_session_file(tmp_path, n_trials=3).path
    read_mat5(path)
    assert gc.isenabled()
    gc.disable()
    try:
        read_mat5(path)
        assert not gc.isenabled()
    finally:
        gc.enable()
