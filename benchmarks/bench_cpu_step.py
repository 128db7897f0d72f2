"""How fast is one training step on a CPU, and would channels-last memory or bfloat16 make it
faster?

Times the compute of one optimisation step of the default network (forward, masked Dice + CE
loss, backward, Adam) on a batch of the default size and crop (4 x 64 x 64) drawn by the
engine's crop sampler, for a grey image (1 input channel), an RGB image (3) and a stack with
the default z context (9 = 2 * 4 + 1 slices), in four ways:

- ``float32``: what the engine does on a CPU (the baseline);
- ``channels_last``: the network and batch in channels-last memory order
  (``torch.channels_last``), the same arithmetic in another order;
- ``bfloat16``: the forward pass under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
- both.

The ways take turns (``--rounds`` rounds of ``--steps`` steps each), and the table gives the
median milliseconds per step and the baseline's median divided by each (above 1 = faster).
Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX) decides whether ``bfloat16``
can be faster at all; the header says.

Run::

    python benchmarks/bench_cpu_step.py --threads 1 2 --markdown benchmarks/results/cpu_step.md
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scribble_benchmark as sb

WAYS = ("float32", "channels_last", "bfloat16", "channels_last + bfloat16")


def batches(channels: int, z_context: int, n: int, seed: int = 0):
    """``n`` training batches ``(x (B, C_in, 64, 64), target, mask)`` from the crop sampler on
    a random image with two painted classes."""
    import torch

    from napari_seglab.core.data import ImageView, Normalization
    from napari_seglab.core.sampling import CropSampler

    rng = np.random.default_rng(seed)
    z = 9 if z_context else 1
    data = rng.random((z, channels, 256, 256), dtype=np.float32)
    labels = np.zeros((z, 256, 256), np.uint8)
    labels[:, 40:200:16, 30:220] = 1
    labels[:, 48:200:16, 60:120] = 2
    spatial = (z, 256, 256) if z > 1 else (256, 256)
    view = ImageView(data, spatial, 1 if channels > 1 else None)
    norm = Normalization(low=[0.0] * channels, high=[1.0] * channels)
    sampler = CropSampler(
        view, labels[0] if z == 1 else labels, norm, 64, 8, rng, z_context=z_context
    )
    out = []
    for _ in range(n):
        x, y = sampler.batch(4)
        y = torch.from_numpy(y)
        out.append((torch.from_numpy(x), (y - 1).clamp(min=0), y > 0))
    return out


def step_time(way: str, channels: int, z_context: int, steps: int) -> float:
    """Seconds per step of one way, over ``steps`` steps after 3 steps of warm-up."""
    import torch

    from napari_seglab.core.config import TrainConfig
    from napari_seglab.core.data import Normalization
    from napari_seglab.core.model import ModelConfig, SegModel
    from napari_seglab.core.training import make_loss

    c_in = channels * (2 * z_context + 1)
    model = SegModel.create(
        2,
        channels,
        Normalization(low=[0.0] * channels, high=[1.0] * channels),
        ModelConfig(z_context=z_context),
        seed=0,
    )
    net = model.net
    data = batches(channels, z_context, 4)
    assert data[0][0].shape[1] == c_in
    if "channels_last" in way:
        net = net.to(memory_format=torch.channels_last)
        data = [(x.to(memory_format=torch.channels_last), t, m) for x, t, m in data]
    loss_fn = make_loss(TrainConfig(), None, False)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    bf16 = "bfloat16" in way

    def one(i):
        x, t, m = data[i % len(data)]
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            logits = net(x)
        loss = loss_fn(logits.float(), t, mask=m)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(3):  # warm-up
        one(i)
    t0 = time.perf_counter()
    for i in range(steps):
        one(i)
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    import torch

    native = bool(
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    kinds = [("grey 2D", 1, 0), ("RGB 2D", 3, 0), ("stack, z context 4", 1, 4)]
    lines = ["| image | threads | " + " | ".join(f"{w}: ms (x)" for w in WAYS) + " |"]
    lines.append("|---" * (len(WAYS) + 2) + "|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, channels, z_context in kinds:
            per_way = {w: [] for w in WAYS}
            for _ in range(args.rounds):  # the ways take turns
                for w in WAYS:
                    per_way[w].append(step_time(w, channels, z_context, args.steps))
            base = float(np.median(per_way["float32"]))
            cells = []
            for w in WAYS:
                m = float(np.median(per_way[w]))
                cells.append(f"{m * 1000:.1f} ({base / m:.2f})")
            lines.append(f"| {name} | {threads} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    header = (
        f"{sb.machine()}; torch {torch.__version__}; native bfloat16: {native}; "
        f"{args.rounds} rounds of {args.steps} steps per way; {sb.load()} at end"
    )
    table = "\n".join(lines)
    print(header)
    print(table)
    if args.markdown:
        command = "python benchmarks/bench_cpu_step.py " + " ".join(argv or sys.argv[1:])
        Path(args.markdown).write_text(f"`{command}`\n\n{header}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
