"""Benchmark: streamed read of a full-size (1320 x 800 x 1140, 10 um) CCF annotation NRRD at step 2,
and region lookup of 100,000 coordinates.

Writes a generated Allen-sized annotation (gzip; with ``--raw`` also a raw copy, 4.8 GB) into a temp
folder in bounded memory, then measures each step in its own subprocess, so that each peak RSS
(VmHWM) belongs to that step alone:

* ``read_annotation(step=2)``: time and peak RSS, then ``region_lookup`` of N random coordinates
  (checked against the closed-form truth of the generator);
* baseline, gzip: decompressing the same data section with zlib and discarding it (the floor for
  any reader of a gzip file; bounded memory);
* baseline, raw (``--raw``): ``np.fromfile`` of the whole volume then ``[::2, ::2, ::2]`` (the naive
  reader: holds all 4.8 GB);
* the interpreter with numpy/pandas/pynrrd imported, to read the RSS figures against.

Not a test: nothing here asserts a time.

    python benchmarks/bench_ccf.py [--shape 1320 800 1140] [--raw] [--lookups 100000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path


def _maxrss_mb() -> float:
    """Peak RSS of this process in MiB: VmHWM (reset by exec, unlike ru_maxrss, which a child
    inherits from the parent it was forked from), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _data_start(path: Path) -> int:
    from pipeline.io.ccf import read_annotation_header

    return int(read_annotation_header(path)["_data_start"])


def worker(kind: str, path: Path, shape, n_lookups: int, seed: int) -> dict:
    import nrrd  # noqa: F401  (same imports in every worker, for a fair RSS floor)
    import numpy as np
    import pandas  # noqa: F401

    from pipeline.io.ccf import read_annotation, region_lookup
    from pipeline.synthetic.ccf import annotation_labels

    out: dict = {"kind": kind}
    if kind == "idle":
        pass
    elif kind == "read":
        t = time.perf_counter()
        vol, vox = read_annotation(path, step=2)
        out["read_s"] = time.perf_counter() - t
        out["shape"] = list(vol.shape)
        out["voxel_um"] = vox
        out["out_mb"] = vol.nbytes / 2**20
        rng = np.random.default_rng(seed)
        ext = (np.array([vol.shape[2], vol.shape[1], vol.shape[0]]) - 1) * vox
        xyz = np.round(rng.uniform(0, ext, (n_lookups, 3)) / 20) * 20  # (ML, DV, AP) on the 20 um grid
        t = time.perf_counter()
        ids = region_lookup(vol, vox, xyz)
        out["lookup_s"] = time.perf_counter() - t
        i = np.rint(xyz / vox).astype(int) * 2  # 10 um voxel indices
        truth = annotation_labels(shape, i[:, 2], i[:, 1], i[:, 0], seed=seed)
        out["lookup_correct"] = bool(np.array_equal(ids, truth))
        out["lookup_in_brain"] = int((ids > 0).sum())
    elif kind == "gunzip":
        start = _data_start(path)
        t = time.perf_counter()
        d = zlib.decompressobj(31)
        total = 0
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                buf = chunk
                while buf:
                    total += len(d.decompress(buf, 8 << 20))
                    buf = d.unconsumed_tail
            total += len(d.flush())
        out["read_s"] = time.perf_counter() - t
        out["bytes"] = total
    elif kind == "fromfile":
        start = _data_start(path)
        t = time.perf_counter()
        A, D, M = shape
        full = np.fromfile(path, dtype="<u4", offset=start).reshape(M, D, A)
        vol = np.ascontiguousarray(full[::2, ::2, ::2]).T
        out["read_s"] = time.perf_counter() - t
        out["shape"] = list(vol.shape)
        del full
    else:
        raise SystemExit(f"unknown worker {kind}")
    out["maxrss_mb"] = _maxrss_mb()
    return out


def run_worker(kind, path, shape, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--path",
        str(path),
        "--shape",
        *map(str, shape),
        "--lookups",
        str(args.lookups),
        "--seed",
        str(args.seed),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[1320, 800, 1140])
    ap.add_argument("--raw", action="store_true", help="also write a raw copy (4.8 GB) and time np.fromfile")
    ap.add_argument("--lookups", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", type=int, default=6, help="gzip level of the generated file (Allen's: default 6)")
    ap.add_argument("--dir", type=Path, default=None, help="folder for the generated files (default: a temp folder)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = tuple(args.shape)
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, shape, args.lookups, args.seed)))
        return 0

    from pipeline.synthetic.ccf import write_large_annotation_nrrd

    full_bytes = shape[0] * shape[1] * shape[2] * 4
    tmp = Path(tempfile.mkdtemp(prefix="bench_ccf_", dir=args.dir))
    try:
        free = shutil.disk_usage(tmp).free
        need = full_bytes * (1.1 if args.raw else 0.1) + 1e9
        print(
            f"volume {shape[0]} x {shape[1]} x {shape[2]} uint32 = {full_bytes / 2**30:.2f} GiB; "
            f"disk free {free / 2**30:.0f} GiB in {tmp}"
        )
        if free < max(need, 10 * 2**30):
            print("less than 10 GB free: use a smaller --shape (and no --raw)")
            return 1
        t = time.perf_counter()
        gz = write_large_annotation_nrrd(
            tmp / "annotation_10.nrrd", shape=shape, seed=args.seed, compresslevel=args.level, planes_per_chunk=8
        )
        print(
            f"wrote gzip (level {args.level}) in {time.perf_counter() - t:.1f} s: {gz.stat().st_size / 2**20:.1f} MiB"
        )
        raw = None
        if args.raw:
            t = time.perf_counter()
            raw = write_large_annotation_nrrd(
                tmp / "annotation_10_raw.nrrd", shape=shape, seed=args.seed, encoding="raw", planes_per_chunk=8
            )
            print(f"wrote raw in {time.perf_counter() - t:.1f} s: {raw.stat().st_size / 2**30:.2f} GiB")

        idle = run_worker("idle", gz, shape, args)
        print(f"\ninterpreter with numpy/pandas/pynrrd imported: peak RSS {idle['maxrss_mb']:.0f} MiB")
        rows = [
            ("read_annotation(step=2), gzip", run_worker("read", gz, shape, args)),
            ("baseline: zlib decompress of the data, gzip", run_worker("gunzip", gz, shape, args)),
        ]
        if raw is not None:
            rows += [
                ("read_annotation(step=2), raw", run_worker("read", raw, shape, args)),
                ("baseline: np.fromfile + [::2,::2,::2], raw", run_worker("fromfile", raw, shape, args)),
            ]
        print(f"\n{'step':48s} {'time s':>8s} {'peak RSS MiB':>13s} {'minus idle':>11s}")
        for name, r in rows:
            print(f"{name:48s} {r['read_s']:8.2f} {r['maxrss_mb']:13.0f} {r['maxrss_mb'] - idle['maxrss_mb']:11.0f}")
        for name, r in rows:
            if "lookup_s" in r:
                print(
                    f"\n{name}: output {r['shape']} at {r['voxel_um']:g} um = {r['out_mb']:.0f} MiB; "
                    f"region_lookup of {args.lookups:,} coordinates: {r['lookup_s'] * 1000:.1f} ms "
                    f"({args.lookups / r['lookup_s'] / 1e6:.1f} M/s), {r['lookup_in_brain']:,} in the brain, "
                    f"{'all correct' if r['lookup_correct'] else 'MISMATCH against truth'}"
                )
        g = dict(rows)
        a, b = g["read_annotation(step=2), gzip"], g["baseline: zlib decompress of the data, gzip"]
        print(f"\ngzip: read_annotation / plain decompression = {a['read_s'] / b['read_s']:.2f}x time")
        if raw is not None:
            a, b = g["read_annotation(step=2), raw"], g["baseline: np.fromfile + [::2,::2,::2], raw"]
            print(
                f"raw: read_annotation / np.fromfile = {a['read_s'] / b['read_s']:.2f}x time, "
                f"{(a['maxrss_mb'] - idle['maxrss_mb']) / (b['maxrss_mb'] - idle['maxrss_mb']):.2f}x peak RSS"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
