"""What batch invariance costs: every chunk runs at exactly ``rows`` rows, so a call with
fewer inputs pays for the padding. Measured in one run, in useful sample-steps per second
(inputs x cleaning steps), for a lone input, a few inputs and a full chunk, at the default
chunk size (64 on CPU) and at 256; the CPU's flags are recorded (compare ratios only).

    python benchmarks/bench_padding.py --out benchmarks/results/padding.json
    python benchmarks/bench_padding.py --smoke   # what the tests run: seconds, tiny nets
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from benchmarks.bench_attacks import cpu_flags
from cowboy_core import Cowboy, Execution
from cowboy_core.io import write_text
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator, freeze
from cowboy_core.settings import Settings


def rate(defense: Cowboy, inputs: int, repeats: int) -> float:
    """Median useful sample-steps per second of cleaning ``inputs`` inputs in one call."""
    x = torch.rand(inputs, *defense.input_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        defense.clean(x)
        times.append(time.perf_counter() - start)
    return inputs * defense.settings.steps / statistics.median(times)


def measure(
    *, width: int, steps: int, chunks: list[int], inputs: list[int], repeats: int
) -> list[dict[str, float]]:
    torch.manual_seed(0)
    g = freeze(DCGANGenerator(channels=1, image_size=28, latent_dim=100, width=width))
    d = freeze(DCGANDiscriminator(channels=1, image_size=28, width=width))
    rows = []
    for chunk in chunks:
        defense = Cowboy(g, d, Settings(steps=steps), execution=Execution(batch_size=chunk))
        for n in inputs:
            rows.append({"chunk_rows": chunk, "inputs": n, "sample_steps_per_s": rate(defense, n, repeats)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/padding.json")
    parser.add_argument("--smoke", action="store_true", help="tiny nets and sizes: checks that it runs")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    if args.smoke:
        rows = measure(width=8, steps=2, chunks=[4], inputs=[1, 4], repeats=1)
        print(json.dumps(rows))
        return
    rows = measure(width=32, steps=10, chunks=[64, 256], inputs=[1, 8, 64, 256], repeats=3)
    result = {
        "load_average_1min": os.getloadavg()[0],  # other work on the machine skews absolute rates
        "cpu": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dcgan_width": 32,
        "image": "1x28x28",
        "rows": rows,
    }
    write_text(args.out, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
