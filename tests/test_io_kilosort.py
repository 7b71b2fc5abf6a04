"""Kilosort/phy reader: two real partial folders against plain numpy/pandas reads, generated folders against
their ground truth, group_by_cluster against a per-cluster boolean-mask reference, and errors (no database)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.io.kilosort import KilosortError, group_by_cluster, read_kilosort, read_params
from pipeline.synthetic.sorting import sorting_differences, write_kilosort

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "kilosort_phy"
BME = REAL / "BME410-DataAnalysis"
NPX = REAL / "neuropixel_trial_data"


def missing_keys(result) -> set[str]:
    return {m.split(":")[0] for m in result.missing}


def naive_groups(clusters: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    ids = np.unique(clusters)
    return ids, [values[clusters == c] for c in ids]


# ------------------------------------------------------------------------------------------ real folders


@pytest.mark.skipif(not BME.is_dir(), reason="real sample data not found")
def test_real_bme410_folder():
    got = read_kilosort(BME)
    times = np.load(BME / "spike_times.npy").ravel()
    clusters = np.load(BME / "spike_clusters.npy").ravel()
    templates = np.load(BME / "spike_templates.npy").ravel()
    positions = np.load(BME / "channel_positions.npy")
    pc_ind = np.load(BME / "pc_feature_ind.npy")

    assert got.sorter == "kilosort2" and got.sample_rate == 30000.0
    assert got.params["n_channels_dat"] == 72 and got.params["dtype"] == "int16"
    assert got.n_spikes == times.size == 58_544
    assert got.spike_times.dtype == np.int64 and np.array_equal(got.spike_times, times.astype(np.int64))
    assert got.spike_clusters.dtype == np.int32 and np.array_equal(got.spike_clusters, clusters)
    assert np.array_equal(got.amplitudes, np.load(BME / "amplitudes.npy").ravel().astype(np.float32))
    assert np.array_equal(got.channel_map, np.load(BME / "channel_map.npy").ravel())
    assert np.array_equal(got.channel_positions, positions)
    assert np.array_equal(got.cluster_ids, np.unique(clusters)) and got.cluster_ids.size == 295
    # no templates: a template's peak site is the first of its pc_feature_ind channels
    assert np.array_equal(got.spike_sites, pc_ind[templates, 0])
    assert np.array_equal(got.spike_depths, positions[pc_ind[templates, 0], 1].astype(np.float32))
    dominant = (
        pd.DataFrame({"c": clusters, "t": templates})
        .groupby("c")["t"]
        .agg(lambda s: s.value_counts().sort_index().idxmax())
    )
    assert np.array_equal(got.peak_channel, pc_ind[dominant.loc[got.cluster_ids].to_numpy(), 0])
    assert np.array_equal(got.unit_position, positions[got.peak_channel])
    # no labels, templates, PC features or metrics
    assert got.cluster_labels.shape == (295, 0) and set(got.cluster_quality.values()) == {"all"}
    assert got.mean_waveforms is None and got.unit_amp is None and got.unit_snr is None and got.metrics is None
    assert {"templates.npy", "pc_features.npy", "cluster_group.tsv", "metrics.csv"} <= missing_keys(got)


@pytest.mark.skipif(not NPX.is_dir(), reason="real sample data not found")
def test_real_neuropixel_trial_folder():
    got = read_kilosort(NPX)
    times = np.load(NPX / "spike_times.npy").ravel()
    clusters = np.load(NPX / "spike_clusters.npy")
    table = pd.read_csv(NPX / "cluster_group.tsv", sep="\t")

    assert got.n_spikes == 379_321 and np.array_equal(got.spike_times, times.astype(np.int64))
    assert np.array_equal(got.spike_clusters, clusters)
    assert np.array_equal(got.cluster_ids, np.unique(clusters)) and got.cluster_ids.size == 404
    assert got.sample_rate == 30000.0 and "params.py" in missing_keys(got)  # no params.py: assumed
    assert list(got.cluster_labels.columns) == ["group"]
    expected = table.set_index("cluster_id")["group"].str.strip()
    assert got.cluster_labels["group"].to_dict() == expected.to_dict()
    assert Counter(got.cluster_labels["group"]) == {"good": 140, "mua": 260, "noise": 4}
    assert Counter(got.cluster_quality.values()) == {"good": 140, "multi": 260, "all": 4}
    assert all(
        got.cluster_quality[c] == {"good": "good", "mua": "multi", "noise": "all"}[g] for c, g in expected.items()
    )
    # nothing about the probe or templates
    assert got.spike_sites is None and got.spike_depths is None and got.amplitudes is None
    assert (got.peak_channel == -1).all() and got.unit_position is None and got.mean_waveforms is None
    assert {"channel_map.npy", "channel_positions.npy", "templates.npy", "spike_templates.npy"} <= missing_keys(got)
    # the grouped spike trains are the boolean-mask ones
    ids, offsets, (trains,) = got.spike_trains()
    ref_ids, ref = naive_groups(clusters, times.astype(np.int64))
    assert np.array_equal(ids, ref_ids)
    assert all(np.array_equal(trains[offsets[k] : offsets[k + 1]], ref[k]) for k in range(ids.size))


# ------------------------------------------------------------------------------------- generated folders


def test_generated_full_folder(tmp_path):
    gen = write_kilosort(tmp_path / "ks", seed=1)
    got = read_kilosort(gen.path)
    assert sorting_differences(got, gen.truth) == []
    assert got.missing == []
    t = gen.truth
    # the simulation exercised what it should
    assert not np.array_equal(got.spike_clusters, np.load(gen.path / "spike_templates.npy").ravel())  # merges
    assert set(got.cluster_quality.values()) == {"good", "multi", "all"}
    assert "unsorted" in set(got.cluster_labels["group"])
    assert list(got.cluster_labels.columns) == ["group", "KSLabel", "Amplitude", "ContamPct"]
    assert got.waveform_unit == "uV" and got.amp_unit == "uV"
    assert set(got.metrics.columns) >= {
        "presence_ratio",
        "amplitude_cutoff",
        "isolation_distance",
        "l_ratio",
        "d_prime",
        "nn_hit_rate",
        "nn_miss_rate",
        "silhouette_score",
        "max_drift",
        "cumulative_drift",
        "isi_viol",
        "firing_rate",
    }
    assert list(got.waveform_metrics.columns)[-8:] == [
        "duration",
        "halfwidth",
        "PT_ratio",
        "repolarization_slope",
        "recovery_slope",
        "spread",
        "velocity_above",
        "velocity_below",
    ]
    # spike depths follow the units (drift +-6 um, jitter 3 um)
    unit_y = gen.units["soma_um"][:, 1]
    cluster_unit = {int(c): u for u, c in enumerate(gen.units["cluster_id"])}
    y_true = unit_y[[cluster_unit[int(c)] for c in got.spike_clusters]]
    assert np.median(np.abs(got.spike_depths - y_true)) < 10
    assert np.array_equal(got.peak_channel, [gen.units["peak_site"][cluster_unit[int(c)]] for c in t.cluster_ids])
    assert np.allclose(got.metrics["firing_rate"] * 600.0, np.bincount(got.spike_clusters)[got.cluster_ids])


def test_generated_templates_no_metrics(tmp_path):
    gen = write_kilosort(tmp_path / "ks", seed=2, labels="KSLabel", with_metrics=False)
    got = read_kilosort(gen.path)
    assert sorting_differences(got, gen.truth, rtol=1e-3) == []
    assert got.waveform_unit == "bits" and got.amp_unit == "bits" and got.unit_snr is None
    assert missing_keys(got) == {"metrics.csv"}
    assert list(got.cluster_labels.columns) == ["KSLabel", "Amplitude", "ContamPct"]
    # merged clusters have no KSLabel row: quality 'all'
    merged = gen.units["cluster_id"][gen.units["merged_units"]]
    assert all(got.cluster_quality[int(c)] == "all" and got.cluster_labels.loc[c, "KSLabel"] == "" for c in merged)
    # a waveform looks like a spike: trough near the template's trough sample, then a smaller positive phase
    w = got.mean_waveforms
    assert (np.abs(w.argmin(axis=1) - 20) <= 2).all() and (w.max(axis=1) < -w.min(axis=1)).all()


def test_generated_pcs_without_templates(tmp_path):
    gen = write_kilosort(tmp_path / "ks", seed=3, with_templates=False, labels=None, with_metrics=False)
    got = read_kilosort(gen.path)
    assert sorting_differences(got, gen.truth) == []
    assert got.mean_waveforms is None and got.unit_amp is None and got.waveform_unit == ""
    assert set(got.cluster_quality.values()) == {"all"} and got.cluster_labels.shape[1] == 0
    assert {"templates.npy", "cluster_group.tsv", "metrics.csv"} <= missing_keys(got)


def test_generated_minimal_folder(tmp_path):
    """No params.py, no spike_clusters.npy, no templates, no PCs, no metrics, legacy labels file."""
    gen = write_kilosort(
        tmp_path / "ks",
        seed=4,
        n_units=6,
        n_spikes=3000,
        n_channels=64,
        duration_s=120,
        sample_rate=25000.0,
        with_templates=False,
        with_pcs=False,
        with_metrics=False,
        labels=None,
        with_clusters=False,
        with_params=False,
    )
    with pytest.raises(KilosortError) as e:  # Kilosort 2+ and phy always write spike_clusters.npy
        read_kilosort(gen.path)
    assert str(e.value).startswith(f"{gen.path}: no spike_clusters.npy") and "clusters_from_templates" in str(e.value)
    got = read_kilosort(gen.path, clusters_from_templates=True)
    assert sorting_differences(got, gen.truth) == []
    assert got.sample_rate == 30000.0  # assumed, and said so
    assert np.array_equal(got.spike_clusters, np.load(gen.path / "spike_templates.npy").ravel())
    assert got.spike_sites is None and got.spike_depths is None and (got.peak_channel == -1).all()
    assert {"params.py", "spike_clusters.npy", "templates.npy", "pc_features.npy"} <= missing_keys(got)


def test_legacy_cluster_groups_csv(tmp_path):
    gen = write_kilosort(
        tmp_path / "ks",
        seed=5,
        n_units=8,
        n_spikes=4000,
        n_channels=96,
        labels="legacy",
        with_metrics=False,
        with_pcs=False,
    )
    got = read_kilosort(gen.path)
    assert sorting_differences(got, gen.truth, rtol=1e-3) == []
    assert list(got.cluster_labels.columns) == ["group"]


def test_metrics_without_templates_and_pyks25(tmp_path):
    gen = write_kilosort(tmp_path / "probe1_pyks25" / "ks", seed=6, n_units=10, n_spikes=5000, with_templates=False)
    got = read_kilosort(gen.path)
    gen.truth.sorter = "pykilosort2.5"
    assert sorting_differences(got, gen.truth) == []
    assert got.waveform_unit == "uV" and got.mean_waveforms.shape == (10, 61)


def test_sparse_templates_equal_dense(tmp_path):
    """phy-style sparse templates (+ templates_ind.npy, -1 padded) read like the dense ones."""
    gen = write_kilosort(tmp_path / "ks", seed=7, n_units=10, n_spikes=5000, n_channels=96, with_metrics=False)
    unw = gen.units["unwhitened_templates"]
    np.save(gen.path / "whitening_mat_inv.npy", np.eye(unw.shape[2]))
    np.save(gen.path / "templates.npy", unw)
    dense = read_kilosort(gen.path)
    n_t, n_s, n_c = unw.shape
    width = 24
    ind = np.full((n_t, width), -1, np.int64)
    sparse = np.zeros((n_t, n_s, width), np.float32)
    for t in range(n_t):
        chans = np.flatnonzero(np.abs(unw[t]).max(axis=0) > 0)[:width]
        ind[t, : chans.size] = chans
        sparse[t, :, : chans.size] = unw[t][:, chans]
    # the generated footprints reach 100 um: check the truncation kept every non-zero channel
    assert all((np.abs(unw[t]).max(axis=0) > 0).sum() <= width for t in range(n_t))
    np.save(gen.path / "templates.npy", sparse)
    np.save(gen.path / "templates_ind.npy", ind)
    got = read_kilosort(gen.path)
    assert sorting_differences(got, dense, rtol=1e-6) == []
    assert np.allclose(got.mean_waveforms, gen.truth.mean_waveforms, rtol=1e-4, atol=1e-4)


def test_tolerant_inputs(tmp_path):
    """Unsorted spikes, (N,) vs (N,1) arrays, TPrime seconds, extra files, a params.py that would run code."""
    gen = write_kilosort(tmp_path / "ks", seed=8, n_units=6, n_spikes=3000, n_channels=64, with_metrics=False)
    folder = gen.path
    rng = np.random.default_rng(0)
    perm = rng.permutation(3000)
    for name in ("spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "amplitudes.npy", "pc_features.npy"):
        a = np.load(folder / name)
        np.save(folder / name, a[perm])
    np.save(folder / "spike_times_sec_adj.npy", (gen.truth.spike_times[perm] / 30000.0 + 1.5).reshape(-1, 1))
    (folder / "notes.txt").write_text("extra file")
    np.save(folder / "unrelated.npy", np.zeros(3))
    witness = tmp_path / "executed"
    (folder / "params.py").write_text(
        f"import os\nsample_rate = 30000.0\ndat_path = r'C:\\x.bin'\n"
        f"__import__('pathlib').Path({str(witness)!r}).touch()\nn_channels_dat = 65\n"
    )
    got = read_kilosort(folder)
    assert not witness.exists()
    # the reader restores time order (stable: spikes of the same sample keep their file order)
    expected = gen.truth
    order = perm[np.argsort(expected.spike_times[perm], kind="stable")]
    for name in ("spike_times", "spike_clusters", "spike_sites", "spike_depths", "amplitudes"):
        setattr(expected, name, getattr(expected, name)[order])
    assert (
        sorting_differences(got, expected, rtol=1e-3, skip=("path", "missing", "params", "spike_times_sec", "repairs"))
        == []
    )
    assert len(got.repairs) == 1 and "spike_times.npy" in got.repairs[0] and "time order" in got.repairs[0]
    assert np.allclose(got.spike_times_sec, expected.spike_times / 30000.0 + 1.5)
    assert read_params(folder / "params.py") == {"sample_rate": 30000.0, "dat_path": "C:\\x.bin", "n_channels_dat": 65}


# ------------------------------------------------------------------------------------------ grouping


@pytest.mark.parametrize("case", ["small", "negative", "sparse_ids", "many_clusters", "grouped", "uint32_col"])
def test_group_by_cluster_matches_masks(case):
    rng = np.random.default_rng(hash(case) % 2**32)
    n = 50_000
    clusters = {
        "small": lambda: rng.integers(0, 40, n).astype(np.int32),
        "negative": lambda: rng.integers(-3, 12, n).astype(np.int64),
        "sparse_ids": lambda: rng.choice([5, 70_000, 2_000_000_000], n).astype(np.int64),
        "many_clusters": lambda: rng.integers(0, 100_000, n).astype(np.int32),
        "grouped": lambda: np.sort(rng.integers(0, 30, n)).astype(np.int32),
        "uint32_col": lambda: rng.integers(0, 300, (n, 1)).astype(np.uint32),
    }[case]()
    times = np.cumsum(rng.integers(1, 50, n)).astype(np.int64)
    depths = rng.normal(1000, 300, n).astype(np.float32)
    ids, offsets, (t, d) = group_by_cluster(clusters, times, depths)
    ref_ids, ref_t = naive_groups(clusters.ravel(), times)
    _, ref_d = naive_groups(clusters.ravel(), depths)
    assert np.array_equal(ids, ref_ids) and ids.dtype == clusters.dtype
    assert offsets[0] == 0 and offsets[-1] == n and offsets.size == ids.size + 1
    for k in range(ids.size):
        assert np.array_equal(t[offsets[k] : offsets[k + 1]], ref_t[k])
        assert np.array_equal(d[offsets[k] : offsets[k + 1]], ref_d[k])


def test_group_by_cluster_edges():
    ids, offsets, (t,) = group_by_cluster(np.zeros(0, np.int32), np.zeros(0))
    assert ids.size == 0 and offsets.tolist() == [0] and t.size == 0
    ids, offsets, (t, none) = group_by_cluster(np.array([3, 1, 3], np.int32), np.array([10, 20, 30]), None)
    assert ids.tolist() == [1, 3] and offsets.tolist() == [0, 1, 3] and t.tolist() == [20, 10, 30] and none is None
    with pytest.raises(ValueError, match="array 0 has 2 elements"):
        group_by_cluster(np.array([1, 2, 3]), np.array([1, 2]))
    with pytest.raises(TypeError):
        group_by_cluster(np.array([1.0, 2.0]))


# ------------------------------------------------------------------------- read grouped by cluster

PER_SPIKE = ("spike_times", "spike_clusters", "spike_sites", "spike_depths", "amplitudes", "spike_times_sec")


def assert_same_except_spikes(got, plain):
    """Every non-per-spike field of two SortingResults identical (arrays bit for bit)."""
    for name, value in vars(plain).items():
        if name in PER_SPIKE or name == "cluster_offsets":
            continue
        other = getattr(got, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and np.array_equal(value, other, equal_nan=True), name
        elif isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, other, check_exact=True)
        else:
            assert value == other, name


def assert_grouped_equal(got, plain):
    """``got`` (by_cluster) holds ``plain``'s per-spike arrays grouped by group_by_cluster, bit for bit."""
    assert_same_except_spikes(got, plain)
    arrays = [getattr(plain, name) for name in PER_SPIKE]
    ids, offsets, grouped = group_by_cluster(plain.spike_clusters, *arrays)
    assert np.array_equal(got.cluster_ids, ids) and np.array_equal(got.cluster_offsets, offsets)
    assert got.n_spikes == plain.n_spikes
    for name, ref in zip(PER_SPIKE, grouped):
        value = getattr(got, name)
        if ref is None:
            assert value is None, name
            continue
        if name == "spike_sites":  # int16 when the probe has < 2**15 sites
            assert value.dtype == np.int16 and np.array_equal(value, ref)
            continue
        assert value.dtype == ref.dtype and value.tobytes() == ref.tobytes(), name


@pytest.fixture(params=[None, 97], ids=["blocks", "tiny_blocks"])
def block(request, monkeypatch):
    """Run with the default block sizes and with tiny ones (many blocks, errors in a later block)."""
    import pipeline.io.kilosort as ks

    if request.param:
        monkeypatch.setattr(ks, "_SPIKE_CHUNK", request.param)
        monkeypatch.setattr(ks, "_ROW_BYTES", 5 * 1024)
    return request.param


@pytest.mark.parametrize(
    "case", ["full", "no_pcs", "no_templates", "from_templates", "unsorted", "tprime", "float_times", "one_cluster"]
)
def test_by_cluster_is_the_plain_read_grouped(tmp_path, block, case):
    kw = dict(n_units=9, n_spikes=6000, n_channels=96, seed=11)
    if case == "no_pcs":
        kw.update(with_pcs=False, with_metrics=False, labels="KSLabel")
    elif case == "no_templates":
        kw.update(with_templates=False)
    elif case == "from_templates":
        kw.update(with_clusters=False, labels="KSLabel")
    folder = write_kilosort(tmp_path / "ks", **kw).path
    if case == "unsorted":  # read into memory, grouped after
        perm = np.random.default_rng(1).permutation(6000)
        for name in ("spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "amplitudes.npy"):
            np.save(folder / name, np.load(folder / name)[perm])
        np.save(folder / "pc_features.npy", np.load(folder / "pc_features.npy")[perm])
    elif case == "tprime":
        np.save(folder / "spike_times_sec.npy", np.load(folder / "spike_times.npy") / 30000.0 + 0.5)
    elif case == "float_times":
        np.save(folder / "spike_times.npy", np.load(folder / "spike_times.npy").astype(np.float64).ravel())
    elif case == "one_cluster":
        np.save(folder / "spike_clusters.npy", np.full(6000, 4, np.int32))
    from_templates = case == "from_templates"
    plain = read_kilosort(folder, clusters_from_templates=from_templates)
    got = read_kilosort(folder, clusters_from_templates=from_templates, by_cluster=True)
    assert_grouped_equal(got, plain)
    # spike_trains() of a grouped result is the grouped arrays themselves
    ids, offsets, (times,) = got.spike_trains()
    assert times is got.spike_times and offsets is got.cluster_offsets
    # only the fields asked for
    some = read_kilosort(
        folder, clusters_from_templates=from_templates, by_cluster=True, spike_fields=("spike_depths",)
    )
    assert some.spike_times is None and some.spike_sites is None and some.n_spikes == 6000
    assert (some.spike_depths is None) == (got.spike_depths is None)
    if got.spike_depths is not None:
        assert np.array_equal(some.spike_depths, got.spike_depths)
    with pytest.raises(ValueError, match="unknown per-spike fields"):
        read_kilosort(folder, spike_fields=("spike_time",))


def test_by_cluster_amplitude_sums_are_those_of_one_bincount(tmp_path, block):
    """Mean waveforms and amplitudes come from per cluster x template amplitude sums; read in blocks they
    must add up in the same order as one bincount (bit-identical waveforms), with many spikes per bin."""
    folder = write_kilosort(tmp_path / "ks", n_units=3, n_spikes=20_000, n_channels=64, seed=5, with_metrics=False).path
    amps = np.random.default_rng(2).lognormal(0, 1, 20_000).astype(np.float32)
    np.save(folder / "amplitudes.npy", amps)
    plain = read_kilosort(folder)
    got = read_kilosort(folder, by_cluster=True)
    assert_grouped_equal(got, plain)
    assert got.mean_waveforms.tobytes() == plain.mean_waveforms.tobytes()


def test_by_cluster_errors_are_the_plain_reads(tmp_path, block):
    gen = write_kilosort(tmp_path / "ks", seed=9, n_units=4, n_spikes=1000, n_channels=64, with_metrics=False)
    folder = gen.path
    originals = {p.name: p.read_bytes() for p in folder.glob("*.npy")}

    def damage(name, edit):
        for n, data in originals.items():
            (folder / n).write_bytes(data)
        a = np.load(folder / name)
        np.save(folder / name, edit(a))

    def bad_at(a, where, value, dtype=np.float64):
        a = a.astype(dtype)
        a.ravel()[where] = value
        return a

    cases = [
        ("spike_times.npy", lambda a: bad_at(a, [400, 900], 12.5)),
        ("spike_times.npy", lambda a: bad_at(a, [999], 1e30)),
        ("spike_clusters.npy", lambda a: bad_at(a, [300, 301, 700], -1, np.int64)),
        ("spike_clusters.npy", lambda a: a[:-3]),
        ("spike_templates.npy", lambda a: bad_at(a, [650], np.nan)),
        ("amplitudes.npy", lambda a: bad_at(a, [998], np.inf, np.float32)),
        ("pc_features.npy", lambda a: a[:-1]),
    ]
    for name, edit in cases:
        damage(name, edit)
        assert ks_error(folder, by_cluster=True) == ks_error(folder), name


def test_by_cluster_memory(tmp_path):
    """Streamed (a counting sort, block by block): at the peak, the arrays returned plus about one
    block of each file; nothing like a copy of each file (the plain read + group_by_cluster: about
    48 bytes per spike here)."""
    import tracemalloc

    from pipeline.synthetic.sorting import write_large_kilosort

    n = 1_000_000
    folder = write_large_kilosort(tmp_path / "ks", n_units=20, n_spikes=n, n_channels=64)
    fields = ("spike_times", "spike_sites", "spike_depths")
    read_kilosort(folder, by_cluster=True, spike_fields=fields)  # imports, caches
    tracemalloc.start()
    try:
        got = read_kilosort(folder, by_cluster=True, spike_fields=fields)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    returned = sum(getattr(got, name).nbytes for name in fields)
    assert returned == n * (8 + 2 + 4)
    assert peak < returned + 8 * 2**20, (peak / n, returned / n)


# ------------------------------------------------------------------------------------------ errors


@pytest.fixture
def small_folder(tmp_path):
    return write_kilosort(tmp_path / "ks", seed=9, n_units=4, n_spikes=1000, n_channels=64, with_metrics=False).path


def test_error_not_a_folder(tmp_path):
    with pytest.raises(KilosortError, match=r"^" + str(tmp_path / "nope") + ": not a folder"):
        read_kilosort(tmp_path / "nope")


def test_error_missing_spike_times(small_folder):
    (small_folder / "spike_times.npy").unlink()
    with pytest.raises(KilosortError) as e:
        read_kilosort(small_folder)
    assert str(e.value).startswith(str(small_folder / "spike_times.npy")) and "missing" in str(e.value)


def test_error_missing_clusters_and_templates(small_folder):
    (small_folder / "spike_clusters.npy").unlink()
    (small_folder / "spike_templates.npy").unlink()
    with pytest.raises(KilosortError, match=rf"^{small_folder}: no spike_clusters.npy and no spike_templates.npy"):
        read_kilosort(small_folder)


@pytest.mark.parametrize("name", ["spike_clusters.npy", "amplitudes.npy", "spike_templates.npy", "pc_features.npy"])
def test_error_mismatched_lengths(small_folder, name):
    a = np.load(small_folder / name)
    np.save(small_folder / name, a[:-7])
    with pytest.raises(KilosortError) as e:
        read_kilosort(small_folder)
    assert str(e.value).startswith(str(small_folder / name)), str(e.value)
    assert "993" in str(e.value) and "1000" in str(e.value)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_error_corrupt_npy(small_folder, how):
    path = small_folder / "spike_clusters.npy"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not numpy" * 20, "empty": b""}[how])
    with pytest.raises(KilosortError) as e:
        read_kilosort(small_folder)
    assert str(e.value).startswith(str(path)) and "not a readable .npy" in str(e.value)


def test_error_bad_params_and_tables(small_folder):
    (small_folder / "params.py").write_text("sample_rate = = 3\n")
    with pytest.raises(KilosortError, match=r"params\.py: not a readable params\.py"):
        read_kilosort(small_folder)
    (small_folder / "params.py").write_text("sample_rate = 'fast'\n")
    with pytest.raises(KilosortError, match=r"params\.py: sample_rate 'fast' is not a number"):
        read_kilosort(small_folder)
    (small_folder / "params.py").write_text("sample_rate = 30000.\n")
    (small_folder / "cluster_group.tsv").write_text("cluster_id\tgroup\nabc\tgood\n")
    with pytest.raises(KilosortError, match=r"cluster_group\.tsv: column 'cluster_id' holds non-integer"):
        read_kilosort(small_folder)
    (small_folder / "cluster_group.tsv").unlink()
    np.save(small_folder / "channel_positions.npy", np.zeros((5, 2)))
    with pytest.raises(KilosortError, match=r"channel_positions\.npy: 5 sites but channel_map\.npy has 63"):
        read_kilosort(small_folder)


# ------------------------------------------------------------------------ damaged per-spike arrays


def ks_error(folder, **kw) -> str:
    with pytest.raises(KilosortError) as e:
        read_kilosort(folder, **kw)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_cluster_ids_must_be_whole_non_negative(small_folder):
    path = small_folder / "spike_clusters.npy"
    good = read_kilosort(small_folder)
    clusters = np.load(path)
    np.save(path, clusters.astype(np.float64))  # whole numbers stored as float: read exactly
    assert np.array_equal(read_kilosort(small_folder).spike_clusters, good.spike_clusters)
    bad = clusters.astype(np.float64)
    bad[17] += 0.5
    np.save(path, bad)
    msg = ks_error(small_folder)
    assert msg.startswith(f"{path}: spike 17 (0-based): {float(bad[17])!r} is not a whole number")
    neg = clusters.astype(np.int64)
    neg[[3, 9]] = -1
    np.save(path, neg)
    assert ks_error(small_folder).startswith(
        f"{path}: spike 3 (0-based): -1 is a negative cluster id (2 spikes in all)"
    )
    np.save(path, np.full(clusters.shape, np.nan))
    assert "is not a finite cluster id" in ks_error(small_folder)


def test_spike_times_must_be_finite_whole_and_plausible(small_folder):
    path = small_folder / "spike_times.npy"
    times = np.load(path)  # uint64 (N, 1)
    good = read_kilosort(small_folder)
    np.save(path, times.astype(np.float64))
    assert np.array_equal(read_kilosort(small_folder).spike_times, good.spike_times)
    for value, problem in [(np.nan, "is not a finite sample number"), (12.25, "is not a whole sample number")]:
        bad = times.astype(np.float64)
        bad[5] = value
        np.save(path, bad)
        assert ks_error(small_folder).startswith(f"{path}: spike 5 (0-based): "), problem
        assert problem in ks_error(small_folder)
    # huge times: reported as implausible, never as "negative" (a wrapped int64)
    for huge in (np.float64(1e30), np.uint64(2**64 - 1), np.uint64(2**63 + 5), np.int64(2**62)):
        bad = times.astype(np.asarray(huge).dtype)
        bad[-1] = huge
        np.save(path, bad)
        msg = ks_error(small_folder)
        assert msg.startswith(f"{path}: spike {times.size - 1} (0-based): ") and "negative" not in msg, msg
        assert "beyond 10 days of recording at 30000 Hz" in msg
    neg = times.astype(np.int64)
    neg[0] = -4
    np.save(path, neg)
    assert "spike 0 (0-based): -4 is a negative sample number" in ks_error(small_folder)
    np.save(path, times.astype(np.complex64))
    assert "expected integer sample numbers" in ks_error(small_folder)


def test_missing_spike_clusters_names_the_folder(tmp_path):
    if not BME.is_dir():
        pytest.skip("real sample data not found")
    folder = tmp_path / "BME410"
    shutil.copytree(BME, folder)
    (folder / "spike_clusters.npy").unlink()
    msg = ks_error(folder)
    assert msg.startswith(f"{folder}: no spike_clusters.npy") and "incomplete" in msg
    got = read_kilosort(folder, clusters_from_templates=True)
    assert np.array_equal(got.spike_clusters, np.load(BME / "spike_templates.npy").ravel())


def test_n_channels_dat_against_channel_map_and_dat_file(small_folder):
    params = small_folder / "params.py"
    text = params.read_text()
    assert "n_channels_dat = 65" in text  # 64 channels + sync; channel_map: 63 sites, channels 0..63
    params.write_text(text.replace("n_channels_dat = 65", "n_channels_dat = 60"))
    msg = ks_error(small_folder)
    assert msg.startswith(f"{params}: n_channels_dat = 60 but channel_map.npy lists 63 channels")
    params.write_text(text.replace("n_channels_dat = 65", "n_channels_dat = 63"))
    assert ks_error(small_folder).startswith(
        f"{small_folder / 'channel_map.npy'}: refers to channel 63 (0-based), but params.py n_channels_dat = 63"
    )
    params.write_text(text.replace("n_channels_dat = 65", "n_channels_dat = 'x'"))
    assert "n_channels_dat 'x' is not a positive whole number" in ks_error(small_folder)
    # the sorted binary, when it is in the folder, must be whole samples and hold every spike
    params.write_text(text.replace(r"r'C:\data\sim_g0_t0.imec0.ap.bin'", "'sim.bin'"))
    last = int(read_kilosort(small_folder).spike_times.max())

    def sparse_bin(size: int) -> None:  # a sparse file of that size: nothing is written
        with open(small_folder / "sim.bin", "wb") as f:
            f.truncate(size)

    sparse_bin(65 * 2 * (last + 1) + 3)
    assert "is not a whole number of samples of n_channels_dat = 65" in ks_error(small_folder)
    sparse_bin(65 * 2 * last)
    msg = ks_error(small_folder)
    assert msg.startswith(f"{small_folder / 'spike_times.npy'}: spike time {last} (samples) is past the end of")
    sparse_bin(65 * 2 * (last + 1))
    assert read_kilosort(small_folder).n_spikes == 1000


def test_channel_map_duplicates(small_folder):
    cm = np.load(small_folder / "channel_map.npy")
    cm[5] = cm[4]
    np.save(small_folder / "channel_map.npy", cm)
    assert f"channel(s) [{cm[4]}] listed more than once" in ks_error(small_folder)


# ------------------------------------------------------------------ geometry against the SpikeGLX meta


def test_check_geometry_generated(tmp_path):
    from pipeline.io.kilosort import check_geometry
    from pipeline.io.spikeglx import read_meta
    from pipeline.synthetic.spikeglx import write_meta

    gen = write_kilosort(tmp_path / "ks", seed=11, n_units=5, n_spikes=2000, with_metrics=False)
    meta = read_meta(write_meta(tmp_path / "x_g0_t0.imec0.ap.meta", "np1", seed=1).path)
    notes = check_geometry(read_kilosort(gen.path), meta)
    assert notes[0] == "n_channels_dat 385 = 384 neural + 1 sync"
    assert "channel_positions match" in notes[1] and "x mirrored" in notes[1]
    # 384 (the sync channel stripped before sorting) is fine too
    params = gen.path / "params.py"
    params.write_text(params.read_text().replace("n_channels_dat = 385", "n_channels_dat = 384"))
    assert check_geometry(read_kilosort(gen.path), meta)[0] == "n_channels_dat 384 = 384 neural"
    # scrambled positions
    pos = np.load(gen.path / "channel_positions.npy")
    np.save(gen.path / "channel_positions.npy", pos[np.random.default_rng(1).permutation(len(pos))])
    with pytest.raises(KilosortError) as e:
        check_geometry(read_kilosort(gen.path), meta)
    msg = str(e.value)
    assert msg.startswith(f"{gen.path / 'channel_positions.npy'}: site positions disagree with {meta.path}")
    assert "scrambled or from another probe layout" in msg
    # two sites swapped are caught too
    swapped = pos.copy()
    swapped[[10, 200]] = swapped[[200, 10]]
    np.save(gen.path / "channel_positions.npy", swapped)
    with pytest.raises(KilosortError, match=r"disagree with .* at 2 of 383 sites \(first: site 10, channel 10"):
        check_geometry(read_kilosort(gen.path), meta)
    np.save(gen.path / "channel_positions.npy", pos)
    # a recording shorter than the spike times
    short = read_meta(write_meta(tmp_path / "s_g0_t0.imec0.ap.meta", "np1", seed=1, duration_s=10.0).path)
    with pytest.raises(KilosortError, match=r"is past the end of the recording of .*s_g0_t0\.imec0\.ap\.meta"):
        check_geometry(read_kilosort(gen.path), short)


@pytest.mark.skipif(not BME.is_dir(), reason="real sample data not found")
def test_check_geometry_real_72_channel_folder_against_385_channel_meta():
    from pipeline.io.kilosort import check_geometry
    from pipeline.io.spikeglx import read_meta

    meta_path = REAL.parent / "spikeglx_meta" / "ibl-neuropixel" / "sample3B_g0_t0.imec1.ap.meta"
    if not meta_path.is_file():
        pytest.skip("real meta not found")
    with pytest.raises(KilosortError) as e:
        check_geometry(read_kilosort(BME), read_meta(meta_path))
    msg = str(e.value)
    assert msg.startswith(f"{BME / 'params.py'}: n_channels_dat = 72 but {meta_path} saves 385 channels")
    assert "384 neural + 1 sync" in msg and "\n" not in msg
