"""``seglab predict`` block by block with Dask: Zarr in or out, ``--workers``, ``--scheduler``.

Used when an input or the output is a Zarr store, or when ``--workers``, ``--scheduler`` or
``--block`` is given. The image is read lazily (Zarr, OME-Zarr, TIFF), predicted by
:func:`napari_seglab.core.blockwise.predict_dask` and written to Zarr block by block (or, for a
``.tif`` output, gathered into memory and written whole). Dask's threaded scheduler runs the
blocks unless ``--workers N`` (a local cluster of N processes) or ``--scheduler ADDRESS`` (a
running ``dask.distributed`` scheduler) is given.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari_seglab.cli.common import CLIError, check_planes_not_channels, each_image, pixel_count

#: From this size on, the time of one block is measured first and the total estimated.
LARGE_MEGAPIXELS = 16


def wanted(images: list[Path], out: Path, args: argparse.Namespace) -> bool:
    """Whether ``seglab predict`` runs block by block."""
    from napari_seglab.core.lazyio import is_zarr

    return bool(
        args.workers
        or args.scheduler
        or args.block
        or is_zarr(out)
        or any(is_zarr(p) for p in images)
    )


@contextlib.contextmanager
def client_for(args: argparse.Namespace) -> Iterator[Any]:
    """A ``dask.distributed`` client for ``--scheduler`` or ``--workers``, else None."""
    if args.scheduler and args.workers:
        raise CLIError("give --workers (a local cluster) or --scheduler (a running one), not both")
    if not (args.scheduler or args.workers):
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise CLIError(
            "--workers and --scheduler need dask.distributed: pip install distributed"
        ) from None
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:
            raise CLIError(f"could not reach the Dask scheduler {args.scheduler}: {exc}") from None
        with client:
            if not client.nthreads() and not args.quiet:
                print(
                    f"the Dask scheduler {args.scheduler} has no workers yet: the blocks wait "
                    "for some to join (Ctrl-C to stop)",
                    file=sys.stderr,
                )
            yield client
        return
    with local_cluster(args.workers) as cluster, Client(cluster) as client:
        yield client


#: Of the variables dask.distributed's nanny sets for its workers, this one fixes glibc's
#: threshold for returning memory, which also stops glibc from raising its mmap threshold:
#: every large torch buffer is then mapped and faulted in afresh, and the network ran 2x
#: slower in a worker than in this process (the same block, 30 s against 15 s).
SLOW_WORKER_ENV = "MALLOC_TRIM_THRESHOLD_"


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` processes of one thread each (the nanny sets
    OMP_NUM_THREADS=1: one core each), without :data:`SLOW_WORKER_ENV`."""
    import dask
    from distributed import LocalCluster

    # the nanny also writes its variables into this process's environment, which the workers
    # of a later cluster inherit: they start without it either way
    saved = os.environ.pop(SLOW_WORKER_ENV, None)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{SLOW_WORKER_ENV}": None}):
            return LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,  # its workers' notes are not the user's business
                preload=["napari_seglab.cli.worker_setup"],
            )
    finally:
        if saved is not None:
            os.environ[SLOW_WORKER_ENV] = saved


def run(model_path: Path, pairs: list[tuple[Path, Path]], args: argparse.Namespace) -> list[Path]:
    """Predict each ``(image, output)`` block by block; returns the images that failed."""
    from napari_seglab.core.blockwise import ModelBytes
    from napari_seglab.core.modelio import load_model

    # its errors at once, before any cluster starts; the workers get the weights only (not
    # the optimiser state a model file may carry: a third of the bytes)
    payload = ModelBytes.from_model(load_model(model_path))
    failed: list[Path] = []
    unfinished: list[Path] = []  # hidden folders of Zarr writes
    try:
        with client_for(args) as client:
            _run_all(payload, pairs, args, client, failed, unfinished)
    finally:
        # once the cluster is gone no block can write any more: remove what an interrupted
        # write left (a worker may have written after the write removed its folder)
        for tmp in unfinished:
            shutil.rmtree(tmp, ignore_errors=True)
    return failed


def _run_all(payload, pairs, args, client, failed: list, unfinished: list) -> None:
    """Predict each pair; the images that failed are added to ``failed``, the hidden folders
    of Zarr writes to ``unfinished``."""
    if client is not None and not args.quiet:
        print(f"Dask: {_describe(client)}", file=sys.stderr)
    failed.extend(
        each_image(
            pairs,
            lambda src, dst: _one(payload, src, dst, args, client, unfinished),
            args.quiet,
        )
    )


def _describe(client: Any) -> str:
    threads = client.nthreads()  # {worker address: threads}
    return (
        f"{len(threads)} worker(s), {sum(threads.values())} thread(s), "
        f"scheduler {client.scheduler.address}"
    )


def _one(
    payload: Any,
    src: Path,
    dst: Path,
    args: argparse.Namespace,
    client: Any,
    unfinished: list[Path],
) -> None:
    from napari_seglab.core.blockwise import predict_dask
    from napari_seglab.core.io import ImageFileError
    from napari_seglab.core.lazyio import is_zarr, open_lazy

    try:
        image = open_lazy(src)
    except ImageFileError as exc:  # it names the file
        raise CLIError(str(exc)) from None
    channel_axis = args.channel_axis if args.channel_axis is not None else image.channel_axis
    in_channels = payload.load().in_channels
    shape = tuple(image.data.shape)
    check_planes_not_channels(src, shape, image.plane_axes, channel_axis, in_channels)
    prediction = predict_dask(
        payload,
        image.data,
        tile=args.tile,
        block=args.block,
        channel_axis=channel_axis,
        device=args.device,
        probabilities=args.probabilities,
    )
    labels = prediction.labels
    blocks = math.prod(len(c) for c in labels.chunks)
    pixels = math.prod(labels.shape)
    if not args.quiet:
        print(
            f"{src}: {image.source} {tuple(image.data.shape)} {image.data.dtype}, "
            f"{pixel_count(pixels)} in {blocks} block(s) of "
            f"{'x'.join(str(c[0]) for c in labels.chunks)}",
            file=sys.stderr,
        )
        if client is None and pixels / 1e6 >= LARGE_MEGAPIXELS and blocks > 2:
            _estimate(labels, blocks, args)
    outputs = {dst: labels}
    if args.probabilities:
        from napari_seglab.cli.predict_command import _prob_path

        outputs[_prob_path(dst)] = prediction.probabilities
    if is_zarr(dst):
        from napari_seglab.core.lazyio import write_zarr

        write_zarr(outputs, run=lambda d: _compute(d, client, args, src.name), tmp_paths=unfinished)
        return
    _write_tiffs(outputs, client, args, src.name)


def _estimate(labels: Any, blocks: int, args: argparse.Namespace) -> None:
    """Time one block here and say how long the whole should take."""
    import torch

    index = tuple(len(c) // 2 for c in labels.chunks)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the run's threads will
    try:
        start = time.perf_counter()
        labels.blocks[index].compute(scheduler="sync")
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    parallel = _threads(args)
    total = seconds * blocks / parallel
    print(
        f"  one block took {seconds:.1f} s here: about {_duration(total)} in all "
        f"on {parallel} thread(s)",
        file=sys.stderr,
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _threads(args: argparse.Namespace) -> int:
    from napari_seglab.cli.common import CPUS

    return int(args.threads or CPUS)


def _compute(delayed: Any, client: Any, args: argparse.Namespace, name: str) -> Any:
    """Compute with a progress bar over blocks: tqdm's for Dask's threads, distributed's own
    on a cluster."""
    if client is not None:
        future = client.compute(delayed)
        try:
            if not args.quiet and sys.stdout.isatty():  # its bar redraws itself: terminals only
                from distributed import progress

                progress(future)
                print()
            return future.result()
        except BaseException:
            # stop the blocks still running before the caller removes what they wrote
            client.cancel(future)
            with contextlib.suppress(Exception):
                from distributed import wait

                wait(future, timeout=10)
            raise
    import torch
    from tqdm.dask import TqdmCallback

    from napari_seglab.core.lazyio import compute_in_threads

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # one block per thread, each on one core
    try:
        with TqdmCallback(
            desc=name,
            disable=True if args.quiet else None,
            file=sys.stderr,
            leave=False,
            unit="task",
            delay=1.0,
        ):
            return compute_in_threads(delayed, _threads(args))
    finally:
        torch.set_num_threads(previous)


def _write_tiffs(outputs: dict[Path, Any], client: Any, args: argparse.Namespace, name) -> None:
    """Gather the arrays (they must fit in memory) and write them as TIFFs: the labels, then
    the probabilities (an interruption leaves neither, the labels alone, or both)."""
    import dask

    from napari_seglab.core.io import write_atomic, write_tiff

    arrays = _compute(dask.delayed(list)(list(outputs.values())), client, args, name)
    items = list(zip(outputs, arrays, strict=True))
    for path, array in items:
        compression = "zlib" if array.dtype.kind == "u" else None

        def write(tmp: str, array=array, compression=compression) -> None:
            write_tiff(tmp, array, compression=compression)

        write_atomic(path, write)
