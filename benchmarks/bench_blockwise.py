"""Throughput and peak memory of prediction: in memory, Dask's threads, a local cluster.

The same image (generated, uint16, written to Zarr once) is predicted by a model of the
default architecture (trained for a few steps on synthetic disks) in three ways, each in its
own process so that its memory is its own:

- ``in memory``: the image read whole, :func:`napari_seglab.core.inference.predict` (torch on
  all ``--threads``);
- ``dask threads``: :func:`napari_seglab.core.blockwise.predict_dask` from the Zarr store to a
  Zarr store on Dask's threaded scheduler (``--threads`` threads, one torch thread each);
- ``local cluster N``: the same on a ``dask.distributed`` ``LocalCluster`` of N worker processes
  of one thread each (N = 1 and ``--threads``), as ``seglab predict --workers N`` starts it.

Peak memory is the largest resident set of the process and its children, sampled every 50 ms.
Throughput is megapixels per second of wall time for the prediction, writing included; the
ratio is to the in-memory run of the same command.

    python benchmarks/bench_blockwise.py --size 2048 --threads 2 --markdown out.md
    python benchmarks/bench_blockwise.py --size 4096 --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_inputs(folder: Path, size: int, device: str) -> None:
    """The model (default architecture, 20 steps on synthetic disks) and a size x size image."""
    import zarr

    sys.path.insert(0, str(HERE.parent / "tests"))
    import synthetic  # the tests' disks

    from napari_seglab.core import TrainConfig, train
    from napari_seglab.core.modelio import save_model

    image, _gt, scribbles = synthetic.blobs((256, 256), n=30, seed=0)
    for report in train(image, scribbles, TrainConfig(steps=20, device=device)):  # noqa: B007
        pass
    save_model(report.model, folder / "model.seglab")
    tile, _gt, _ = synthetic.blobs((512, 512), n=120, seed=1, painted=0)
    reps = -(-size // 512)
    big = np.tile(tile, (reps, reps))[:size, :size]
    zarr.create_array(str(folder / "image.zarr"), data=big, chunks=(1024, 1024))


def run_method(folder: Path, method: str, threads: int, device: str) -> float:
    """Predict with one method in this process; returns the seconds it took."""
    import torch
    import zarr

    from napari_seglab.core.blockwise import ModelBytes, predict_dask
    from napari_seglab.core.inference import predict
    from napari_seglab.core.lazyio import open_lazy, write_zarr
    from napari_seglab.core.modelio import load_model

    out = folder / f"{method.replace(' ', '_')}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    if method == "in memory":
        torch.set_num_threads(threads)
        model = load_model(folder / "model.seglab", device=device)
        image = zarr.open(str(folder / "image.zarr"))[:]
        labels = predict(model, image, probabilities=False).labels
        zarr.create_array(str(out), data=labels, chunks=(1024, 1024))
        return time.perf_counter() - start
    payload = ModelBytes.from_file(folder / "model.seglab")
    labels = predict_dask(payload, open_lazy(folder / "image.zarr").data, device=device).labels
    if method == "dask threads":
        torch.set_num_threads(1)
        write_zarr({out: labels}, run=lambda d: d.compute(scheduler="threads", num_workers=threads))
        return time.perf_counter() - start
    from distributed import Client

    from napari_seglab.cli.blockwise_command import local_cluster

    workers = int(method.rsplit(" ", 1)[1])
    with local_cluster(workers) as cluster, Client(cluster) as client:
        start = time.perf_counter()  # the cluster's start-up is not the prediction's
        write_zarr({out: labels}, run=lambda d: client.compute(d).result())
        return time.perf_counter() - start


def measure(folder: Path, method: str, threads: int, device: str) -> dict:
    """Run a method in a child process, sampling the memory of its process tree."""
    import psutil

    argv = [sys.executable, __file__, "--child", str(folder), method, str(threads), device]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{method} failed (exit {proc.returncode})")
    return {
        "method": method,
        "seconds": float(out.strip().splitlines()[-1]),
        "peak_mb": peak / 2**20,
    }


def table(rows: list[dict], megapixels: float) -> str:
    base = next(r for r in rows if r["method"] == "in memory")
    base_rate = megapixels / base["seconds"]
    lines = [
        "| method | seconds | Mpixel/s | throughput / in memory | peak memory (MB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rate = megapixels / r["seconds"]
        lines.append(
            f"| {r['method']} | {r['seconds']:.1f} | {rate:.2f} | {rate / base_rate:.2f} | "
            f"{r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        folder, method, threads, device = argv[1:5]
        print(run_method(Path(folder), method, int(threads), device))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048, help="edge of the square image (px)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--markdown", help="also write the table and the command here")
    p.add_argument("--json")
    args = p.parse_args(argv)
    methods = ["in memory", "dask threads", "local cluster 1"]
    if args.threads > 1:
        methods.append(f"local cluster {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_inputs(folder, args.size, args.device)
        rows = []
        for method in methods:
            rows.append(measure(folder, method, args.threads, args.device))
            print(f"{method}: {rows[-1]['seconds']:.1f} s", flush=True)
    megapixels = args.size**2 / 1e6
    command = "python benchmarks/bench_blockwise.py " + " ".join(argv)
    import torch

    sys.path.insert(0, str(HERE))
    from scribble_benchmark import load
    from scribble_benchmark import machine as cpu

    machine = f"{cpu()}, torch {torch.__version__}, device {args.device}; {load()} at end"
    text = (
        f"`{command}`\n\n{args.size}x{args.size} uint16 ({megapixels:.1f} Mpixel), default "
        f"network, {args.threads} thread(s); {machine}\n\n{table(rows, megapixels)}\n"
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
