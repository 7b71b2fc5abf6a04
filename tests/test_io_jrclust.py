"""JRClust v3 ``_jrc.mat`` / v4 ``_res.mat`` reader against generated files with ground truth (no database)."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.io.jrclust import JRClustError, jrc_quality, read_jrclust, read_jrclust_v3, read_jrclust_v4, read_prm
from pipeline.io.kilosort import group_by_cluster
from pipeline.synthetic.sorting import sorting_differences, write_jrclust_v3, write_jrclust_v4

SMALL = dict(n_units=8, n_spikes=4000, n_channels=96, duration_s=200.0)


def missing_keys(result) -> set[str]:
    return {m.split(":")[0] for m in result.missing}


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    return write_jrclust_v3(tmp_path_factory.mktemp("jrc3") / "dl25_g0_t0.imec.ap_imec3_opt3_jrc.mat", seed=11)


@pytest.fixture(scope="module")
def v4(tmp_path_factory):
    return write_jrclust_v4(tmp_path_factory.mktemp("jrc4") / "dl25_g0_t0.imec.ap_res.mat", seed=12)


def test_v3_against_truth(v3):
    got = read_jrclust_v3(v3.path)
    assert sorting_differences(got, v3.truth, rtol=1e-6, atol=1e-6) == []
    assert got.missing == [] and got.sorter == "jrclust_v3"
    # noise / deleted clusters dropped, ids 1-based as JRClust's
    assert got.dropped_spikes > 0 and got.spike_clusters.min() >= 1
    assert got.n_spikes + got.dropped_spikes == 20_000
    with h5py.File(v3.path) as f:  # 1-based MATLAB values on disk
        assert f["viTime_spk"][0, 0] == got.spike_times[0] + 1 or f["S_clu/viClu"][0, 0] <= 0
        assert f["mrPos_spk"].shape == (2, 20_000) and f["S_clu/trWav_raw_clu"].shape == (20, 9, 61)
    assert set(got.cluster_quality.values()) == {"good", "multi", "ok", "all"}
    assert got.waveform_unit == "uV" and got.amp_unit == "uV"
    # the generated depths follow the units
    assert np.allclose(got.unit_position[:, 1], v3.units["soma_um"][:, 1], atol=3)


def test_v4_against_truth(v4):
    got = read_jrclust(v4.path)  # told apart by its fields
    assert sorting_differences(got, v4.truth, rtol=1e-6, atol=1e-6) == []
    assert got.missing == [] and got.sorter == "jrclust_v4"
    assert got.cluster_labels.columns.tolist() == ["note"]
    assert got.cluster_quality == {c: jrc_quality(n) for c, n in got.cluster_labels["note"].items()}
    # waveform = site 0 of meanWfLocalRaw = the peak site: trough at the JRClust trough sample
    assert (np.abs(got.mean_waveforms.argmin(axis=1) - 24) <= 2).all()


def test_auto_detection_and_group_by_cluster(v3, v4):
    for gen in (v3, v4):
        got = read_jrclust(gen.path)
        assert got.sorter == gen.truth.sorter
        ids, offsets, (times,) = group_by_cluster(got.spike_clusters, got.spike_times)
        assert np.array_equal(ids, gen.truth.cluster_ids)
        for k, c in enumerate(ids):
            assert np.array_equal(
                times[offsets[k] : offsets[k + 1]], gen.truth.spike_times[gen.truth.spike_clusters == c]
            )


def test_v3_classic_mat_and_no_site_map(tmp_path):
    gen = write_jrclust_v3(tmp_path / "a_jrc.mat", seed=13, fmt="5", **SMALL)
    got = read_jrclust(gen.path)
    assert sorting_differences(got, gen.truth, rtol=1e-6, atol=1e-6) == []
    gen = write_jrclust_v3(tmp_path / "b_jrc.mat", seed=14, with_site_map=False, **SMALL)
    got = read_jrclust(gen.path)
    assert sorting_differences(got, gen.truth, rtol=1e-6, atol=1e-6) == []
    assert missing_keys(got) == {"P.viSite2Chan", "P.mrSiteXY"}


def test_v4_without_prm_uses_spikeglx_meta(tmp_path):
    gen = write_jrclust_v4(tmp_path / "x_g0_t0.imec.ap_res.mat", seed=15, with_prm=False, **SMALL)
    got = read_jrclust_v4(gen.path)
    assert sorting_differences(got, gen.truth, rtol=1e-6, atol=1e-6) == []
    assert got.sample_rate == 30000.0 and missing_keys(got) == {"x_g0_t0.imec.ap.prm", "siteMap", "siteLoc"}
    (tmp_path / "x_g0_t0.imec.ap.meta").write_text("imDatPrb_type=0\nimSampRate=30000.391\nnSavedChans=385\n")
    got = read_jrclust_v4(gen.path)
    assert got.sample_rate == 30000.391 and missing_keys(got) == {"siteMap", "siteLoc"}


def test_read_prm(tmp_path):
    prm = tmp_path / "p.prm"
    prm.write_text(
        "% header % comment\n"
        "sampleRate = 25000; % Hz\n"
        "rawRecordings = {'C:\\data\\a%b.bin', 'b.bin'};\n"
        "siteMap = [1, 2 3,...\n"
        "   4];\n"
        "siteLoc = [0, 0; 16, 20\n"
        "   0, 40; 16, 60];  % um\n"
        "vcName = 'it''s';\n"
        "useGPU = false;\n"
        "freqLim = [300, nan];\n"
        "nSites = numel(siteMap); % an expression\n"
    )
    p = read_prm(prm)
    assert p["sampleRate"] == 25000 and p["rawRecordings"] == ["C:\\data\\a%b.bin", "b.bin"]
    assert p["siteLoc"].tolist() == [[0, 0], [16, 20], [0, 40], [16, 60]] and p["vcName"] == "it's"
    assert p["useGPU"] is False and "nSites" not in p and p["siteMap"].tolist() == [1, 2, 3, 4]
    assert p["freqLim"][0] == 300 and np.isnan(p["freqLim"][1])


def test_quality_from_notes():
    assert [
        jrc_quality(n) for n in ("single", "Single unit", "multi", "multi?", "ok", "", "noise", "=12", " single")
    ] == ["good", "good", "multi", "multi", "ok", "all", "all", "all", "good"]


# ------------------------------------------------------------------------------------------ errors


def _copy_without(src: Path, dst: Path, field: str, replace=None) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        del f[field]
        if replace is not None:
            f.create_dataset(field, data=replace)
            f[field].attrs["MATLAB_class"] = np.bytes_("int32")
    return dst


@pytest.mark.parametrize(
    "field,expected",
    [
        ("S_clu/csNote_clu", "S_clu.csNote_clu"),
        ("P/sRateHz", "P.sRateHz"),
        ("viSite_spk", "viSite_spk"),
        ("S_clu/viClu", "S_clu.viClu"),
    ],
)
def test_error_v3_missing_field(v3, tmp_path, field, expected):
    path = _copy_without(v3.path, tmp_path / "bad_jrc.mat", field)
    with pytest.raises(JRClustError) as e:
        read_jrclust_v3(path)
    assert str(e.value).startswith(f"{path}: missing field {expected}")


def test_v4_filtered_waveforms_when_no_raw(v4, tmp_path):
    path = tmp_path / "nofilt_res.mat"
    path.write_bytes(v4.path.read_bytes())
    with h5py.File(path, "r+") as f:
        f.move("meanWfLocalRaw", "meanWfLocal")
    got = read_jrclust(path)
    assert np.array_equal(got.mean_waveforms, v4.truth.mean_waveforms)
    assert missing_keys(got) == {"meanWfLocalRaw", "nofilt.prm", "siteMap", "siteLoc"}  # no .prm beside it
    with h5py.File(path, "r+") as f:
        del f["meanWfLocal"]
    with pytest.raises(JRClustError, match=r"missing field meanWfLocalRaw \(mean raw waveforms\)"):
        read_jrclust(path)


def test_error_v4_missing_field_and_wrong_version(v4, tmp_path):
    path = _copy_without(v4.path, tmp_path / "bad_res.mat", "clusterNotes")
    with pytest.raises(JRClustError, match=r"bad_res\.mat: missing field clusterNotes"):
        read_jrclust(path)
    with pytest.raises(JRClustError, match=r"missing field P\.sRateHz"):
        read_jrclust_v3(v4.path)


def test_error_mismatched_lengths(v3, v4, tmp_path):
    path = _copy_without(v3.path, tmp_path / "short_jrc.mat", "viSite_spk", replace=np.ones((1, 19_990), np.int32))
    with pytest.raises(JRClustError) as e:
        read_jrclust(path)
    assert str(e.value).startswith(str(path)) and "viSite_spk has 19990 spikes but viTime_spk has 20000" in str(e.value)
    path = _copy_without(v4.path, tmp_path / "short_res.mat", "spikeClusters", replace=np.ones((1, 5), np.int32))
    with pytest.raises(JRClustError, match="spikeClusters has 5 spikes but spikeTimes has 20000"):
        read_jrclust(path)


def test_error_cluster_out_of_range(v4, tmp_path):
    clusters = np.full((1, 20_000), 99, np.int32)
    path = _copy_without(v4.path, tmp_path / "range_res.mat", "spikeClusters", replace=clusters)
    with pytest.raises(JRClustError, match="refers to cluster 99 but the file describes 20 clusters"):
        read_jrclust(path)


@pytest.mark.parametrize("how", ["truncated", "not_matlab", "empty", "absent"])
def test_error_corrupt_file(v3, tmp_path, how):
    path = tmp_path / "corrupt_jrc.mat"
    data = v3.path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "not_matlab":
        path.write_bytes(b"hello" * 100)
    elif how == "empty":
        path.write_bytes(b"")
    with pytest.raises(JRClustError) as e:
        read_jrclust(path)
    assert str(e.value).startswith(str(path)), str(e.value)


@pytest.mark.parametrize(
    "value, pattern",
    [
        (1e30, r"spikeTimes\[7\] \(0-based\) is 1e\+30 samples, beyond 10 days of recording"),
        (2.0**63 + 4096, r"spikeTimes\[7\] \(0-based\) is 9\.22337e\+18 samples, beyond 10 days"),
        (120.5, r"spikeTimes\[7\] \(0-based\) is 120\.5, not a whole sample number"),
        (0.0, r"spikeTimes\[7\] \(0-based\) is 0; JRClust sample numbers start at 1"),
    ],
)
def test_error_bad_spike_times_are_named_not_called_negative(v4, tmp_path, value, pattern):
    with h5py.File(v4.path, "r") as f:
        times = np.array(f["spikeTimes"], dtype=np.float64)
    times.reshape(-1)[7] = value
    path = tmp_path / "times_res.mat"
    path.write_bytes(v4.path.read_bytes())
    with h5py.File(path, "r+") as f:
        del f["spikeTimes"]
        f.create_dataset("spikeTimes", data=times)
        f["spikeTimes"].attrs["MATLAB_class"] = np.bytes_("double")
    with pytest.raises(JRClustError) as e:
        read_jrclust(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "negative" not in msg and "< 1" not in msg
    assert re.search(pattern, msg), msg
