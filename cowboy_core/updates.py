"""Update rules on z: the paper's plain GD, heavy-ball momentum, Adam, and backtracking GD.

Every rule works row by row: a row's update reads only that row's gradient, loss and memory,
so that an input's cleaning never depends on the other rows of its chunk.

Plain GD is stable on a quadratic only while ``lr * lambda_max < 2`` (heavy ball:
``2 (1 + beta)``). At the paper's step size the trained GAN's loss is far sharper than that
(``docs/reproduction/chaos.csv``), and the descent then amplifies rounding: the same input gives
different answers. :class:`Backtracking` keeps each row's descent stable by construction: a
row's step is halved until the loss falls by at least half the linear prediction (Armijo with
c = 1/2, which on a quadratic means ``t * curvature <= 1`` along the gradient), so L never rises.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .choices import Optimizer

RowLoss = Callable[[torch.Tensor], torch.Tensor]


class UpdateRule:
    """One update of z from its gradient; a rule with memory keeps it per row.

    Hooks: :meth:`begin` (new rows), :meth:`step`, :meth:`step_size` (the step each row took
    last, for the stability diagnostics) and :attr:`stability_limit` (step x curvature above
    which the rule diverges on a quadratic; NaN where no such bound holds).
    """

    stability_limit = 2.0

    def __init__(self, *, lr: float) -> None:
        self.lr = lr

    def begin(self, z: torch.Tensor, row_loss: RowLoss) -> None:
        """Reset the memory for a new chunk of rows; ``row_loss(z)`` is L per row, no graph."""

    def step(self, z: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError

    def step_size(self, z: torch.Tensor) -> torch.Tensor:
        """Per row, the step size of the last update."""
        return torch.full((z.shape[0],), self.lr, dtype=z.dtype, device=z.device)


class GD(UpdateRule):
    """The paper's plain gradient descent."""

    def step(self, z: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, step: int) -> torch.Tensor:
        return z - self.lr * grad


class Momentum(UpdateRule):
    """Heavy-ball momentum."""

    def __init__(self, *, lr: float, beta: float = 0.9) -> None:
        super().__init__(lr=lr)
        self.beta = beta
        self.stability_limit = 2.0 * (1.0 + beta)

    def begin(self, z: torch.Tensor, row_loss: RowLoss) -> None:
        self.velocity = torch.zeros_like(z)

    def step(self, z: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, step: int) -> torch.Tensor:
        self.velocity = self.beta * self.velocity + grad
        return z - self.lr * self.velocity


class Adam(Momentum):
    """Adam, nearly invariant to the scale of the loss (no curvature bound applies)."""

    beta2 = 0.999

    def __init__(self, *, lr: float, beta: float = 0.9) -> None:
        super().__init__(lr=lr, beta=beta)
        self.stability_limit = math.nan

    def begin(self, z: torch.Tensor, row_loss: RowLoss) -> None:
        super().begin(z, row_loss)
        self.second = torch.zeros_like(z)

    def step(self, z: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, step: int) -> torch.Tensor:
        t = step + 1
        self.velocity = self.beta * self.velocity + (1 - self.beta) * grad
        self.second = self.beta2 * self.second + (1 - self.beta2) * grad.square()
        m_hat = self.velocity / (1 - self.beta**t)
        v_hat = self.second / (1 - self.beta2**t)
        return z - self.lr * m_hat / (v_hat.sqrt() + 1e-8)


class Backtracking(UpdateRule):
    """Gradient descent with a per-row Armijo line search: stable by construction.

    Each row tries ``min(lr, growth * t_last)`` and halves it until
    ``L(z - t g) <= L(z) - c t ||g||^2``; a row that finds no such step in ``max_halvings``
    halvings does not move. The trial points run without a graph: through an unrolled
    descent the accepted step is a constant, so the gradient is exact almost everywhere.

    Args:
        lr: the largest step tried.
        sufficient_decrease: c, the fraction of the linear prediction the loss must fall by.
        growth: how much a row's step may grow from one update to the next.
        max_halvings: halvings tried before a row stays where it is.
    """

    stability_limit = 2.0

    def __init__(
        self, *, lr: float, sufficient_decrease: float = 0.5, growth: float = 2.0, max_halvings: int = 20
    ) -> None:
        super().__init__(lr=lr)
        self.c, self.growth, self.max_halvings = sufficient_decrease, growth, max_halvings

    def begin(self, z: torch.Tensor, row_loss: RowLoss) -> None:
        self.row_loss = row_loss
        self.t = torch.full((z.shape[0],), self.lr, dtype=z.dtype, device=z.device)

    def step(self, z: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor, step: int) -> torch.Tensor:
        # Copies, not views: under compile on CUDA, the trial calls below replay a CUDA graph
        # that reuses the buffers the last call's loss and gradient were read from.
        grad = grad.clone()
        with torch.no_grad():
            z0, g, l0 = z.detach().clone(), grad.detach(), loss.detach().clone()
            g2 = g.square().sum(dim=1)
            # A row that stayed put last time starts again from lr.
            t = torch.where(self.t > 0, (self.t * self.growth).clamp(max=self.lr), self.lr)
            accepted = torch.zeros_like(t, dtype=torch.bool)
            for _ in range(self.max_halvings):
                trial = self.row_loss(z0 - t[:, None] * g)
                accepted = trial <= l0 - self.c * t * g2
                if bool(accepted.all()):
                    break
                t = torch.where(accepted, t, t / 2)
            # torch.where, not masking: a NaN trial loss must not let a row move.
            self.t = torch.where(accepted, t, torch.zeros_like(t))
        return z - self.t[:, None] * grad

    def step_size(self, z: torch.Tensor) -> torch.Tensor:
        return self.t.detach().clone()


UPDATE_RULES: dict[Optimizer, type[UpdateRule]] = {
    Optimizer.GD: GD,
    Optimizer.MOMENTUM: Momentum,
    Optimizer.ADAM: Adam,
    Optimizer.BACKTRACKING: Backtracking,
}


def rule_for(optimizer: str | Optimizer, lr: float) -> UpdateRule:
    """A fresh update rule (its state belongs to one descent)."""
    return UPDATE_RULES[Optimizer.parse(optimizer)](lr=lr)
