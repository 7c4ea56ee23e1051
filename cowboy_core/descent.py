"""The objective of eq. (4) and the one descent loop of Algorithm 1, row by row.

Every operation here treats the rows of z independently: with the chunks of
:class:`~cowboy_core.execution.Execution`, a row's result never depends on its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .updates import UpdateRule

# Early stopping compares a row's loss every this many steps.
EARLY_STOP_EVERY = 50


class Objective:
    """Eq. (4) per row: ``||G(z)-x||^2 / (2 sigma^2) + d_weight * (-log D(G(z)))``.

    ``d_weight`` is the one place the D term is weighted: 1 is the paper, 0 is Defense-GAN
    (D is then never run). Returns the per-row loss and G(z).
    """

    def __init__(
        self, generator: nn.Module, discriminator: nn.Module, *, sigma: float = 1.0, d_weight: float = 1.0
    ) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.sigma, self.d_weight = float(sigma), float(d_weight)

    def __call__(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fake = self.generator(z)
        loss = (fake - x).square().flatten(1).sum(1) / (2.0 * self.sigma**2)
        if self.d_weight:
            loss = loss - self.d_weight * F.logsigmoid(self.discriminator(fake).reshape(-1))
        return loss, fake


@dataclass
class Descent:
    """What :func:`descend` returns: z at each recorded step, the steps each row ran, and the
    step size each row took from each recorded step (for the stability diagnostics)."""

    snapshots: dict[int, torch.Tensor]
    steps_run: torch.Tensor
    step_sizes: dict[int, torch.Tensor] = field(default_factory=dict)


def descend(
    objective: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    rule: UpdateRule,
    z: torch.Tensor,
    x: torch.Tensor,
    *,
    steps: int,
    record: Iterable[int] = (),
    early_stop_tol: float | None = None,
    create_graph: bool = False,
    graph_from: int = 0,
) -> Descent:
    """``steps`` updates of every row of ``z`` against its target row of ``x``.

    A row whose loss improved by less than ``early_stop_tol`` (relative) over
    :data:`EARLY_STOP_EVERY` steps stops moving; it stays in the chunk, so that no row's
    arithmetic depends on when its neighbours stop. With ``create_graph`` the steps from
    ``graph_from`` on stay differentiable, so that an attack can backpropagate from z_m to ``x``.
    """
    record = set(record) | {steps}
    active = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    steps_run = torch.full((z.shape[0],), steps, dtype=torch.int64, device=z.device)
    snapshots: dict[int, torch.Tensor] = {}
    step_sizes: dict[int, torch.Tensor] = {}
    last_check: torch.Tensor | None = None
    # A z0 with a graph (an encoder's E(x)) stays attached when the whole descent is unrolled.
    z = z if create_graph and graph_from == 0 else z.detach()
    rule.begin(z, lambda trial: objective(trial, x.detach())[0].detach())
    with torch.enable_grad():  # gradients in z are needed, even under torch.no_grad()
        for step in range(steps + 1):
            if step in record:
                snapshots[step] = z
            if step == steps or not bool(active.any()):
                break
            graph = create_graph and step >= graph_from
            if not (graph and z.requires_grad):
                z = z.detach().requires_grad_(True)
            loss, _ = objective(z, x if graph else x.detach())
            (grad,) = torch.autograd.grad(loss.sum(), z, create_graph=graph)
            loss = loss.detach().clone()  # a CUDA graph reuses its output buffer
            with torch.set_grad_enabled(graph):
                moved = rule.step(z, grad, loss, step)
                z = moved if early_stop_tol is None else torch.where(active[:, None], moved, z)
            z = z if graph else z.detach()
            if step in record:
                step_sizes[step] = rule.step_size(z)
            if early_stop_tol is None or (step + 1) % EARLY_STOP_EVERY:
                continue
            if last_check is not None:
                stalled = active & ~((last_check - loss) > early_stop_tol * loss.abs())
                steps_run[stalled] = step + 1
                active = active & ~stalled
            last_check = loss
    for s in record:
        snapshots.setdefault(s, z)
    if not create_graph:
        snapshots = {s: v.detach() for s, v in snapshots.items()}
    return Descent(snapshots, steps_run, step_sizes)
