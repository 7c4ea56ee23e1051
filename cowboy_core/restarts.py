"""Restarts (Algorithm 1 with R starting points): each input becomes R rows, input-major, and
the row with the lowest final loss stands for the input. The one place that lays rows out,
so that cleaning, the unrolled cleaning and the diagnostics agree on which row is which.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def initial_latents(n: int, restarts: int, latent_dim: int, seed: int) -> torch.Tensor:
    """z0 for ``n`` inputs x ``restarts``: restart k of every input starts from the k-th draw
    of ``seed`` (a CPU generator), so that no input's start depends on its neighbours."""
    starts = torch.randn(restarts, latent_dim, generator=torch.Generator().manual_seed(seed))
    return starts.repeat(n, 1)


def check_latents(latents: torch.Tensor, n: int, restarts: int, latent_dim: int) -> torch.Tensor:
    """``latents`` if it holds one row per input and restart, else a ValueError saying the shape."""
    if latents.shape != (n * restarts, latent_dim):
        raise ValueError(
            f"latents must have shape ({n * restarts}, {latent_dim}), got {tuple(latents.shape)}"
        )
    return latents


def expand_rows(x: torch.Tensor, restarts: int) -> torch.Tensor:
    """Each input repeated once per restart, input-major: row ``i * restarts + k``."""
    return x.repeat_interleave(restarts, dim=0)


def chunk_slices(n: int, rows: int, restarts: int) -> Iterator[tuple[slice, slice]]:
    """For ``n`` inputs, each chunk's inputs and their rows (input x restart): whole inputs, as
    many as fit in one chunk of ``rows`` rows, so that an input's restarts share its chunk."""
    per = rows // restarts
    for start in range(0, n, per):
        stop = min(start + per, n)
        yield slice(start, stop), slice(start * restarts, stop * restarts)


def best_rows(loss: torch.Tensor, inputs: int, restarts: int) -> torch.Tensor:
    """Per input, the index of its row with the lowest ``loss`` (the first ``inputs * restarts``
    rows; rows beyond them are padding)."""
    best = loss[: inputs * restarts].detach().view(inputs, restarts).argmin(dim=1)
    return torch.arange(inputs, device=best.device) * restarts + best


def most_steps(steps_run: torch.Tensor, inputs: int, restarts: int) -> torch.Tensor:
    """Per input, the most steps any of its restarts ran (early stopping freezes rows)."""
    return steps_run[: inputs * restarts].view(inputs, restarts).max(dim=1).values
