"""Compile cannot break a job: every path that differentiates twice runs eager, the
backtracking rule keeps copies of what a compiled call returned, the gradient diagnostics run
in the deterministic-kernels context, and a classifier on another device is named."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from torch import nn

from cowboy_core import Cowboy, DefendedClassifier, Execution, Settings
from cowboy_core.devices import DeviceError, check_same_device
from cowboy_core.diagnostics import largest_curvature
from cowboy_core.io import load_models
from cowboy_core.updates import Backtracking

TRAINED = Path(__file__).parent / "fixtures" / "trained_gan.safetensors"


def trained(**execution: object) -> Cowboy:
    gan = load_models(TRAINED)[0]
    settings = Settings(steps=3, optimizer="backtracking", lr=0.05)
    return Cowboy(
        gan["generator"], gan["discriminator"], settings, execution=Execution(batch_size=4, **execution)
    )


def refuse_compiled(objective):  # type: ignore[no-untyped-def]
    """A stand-in for torch.compile's wrapper that, like aot_autograd, cannot be differentiated
    twice: its outputs carry no graph a second backward could follow."""

    def compiled(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled() and x.requires_grad:
            raise AssertionError("a double-backward path ran the compiled objective")
        return objective(z, x)

    return compiled


def test_the_unrolled_gradient_runs_eager_under_compile(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Execution, "wrap", lambda self, objective: refuse_compiled(objective))
    x = torch.rand(3, *trained().input_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    grads = []
    for compiled in (True, False):
        point = x.clone().requires_grad_(True)
        trained(compile=compiled).clean_unrolled(point).square().sum().backward()
        grads.append(point.grad)
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_the_real_compile_cannot_break_the_unrolled_gradient():
    """With torch.compile itself: clean_unrolled never calls the compiled objective."""
    defense = trained(compile=True)
    x = (
        torch.rand(2, *defense.input_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ).requires_grad_()
    defense.clean_unrolled(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_backtracking_keeps_copies_of_what_the_last_call_returned():
    """Under a CUDA graph the next call overwrites the buffers the last one returned: a step
    whose trial calls overwrite the gradient and loss it was given must not change."""
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    grad, loss = torch.ones(4, 3), torch.full((4,), 10.0)

    def steps(clobber: bool) -> torch.Tensor:
        rule = Backtracking(lr=0.5)
        g, l0 = grad.clone(), loss.clone()

        def row_loss(trial: torch.Tensor) -> torch.Tensor:
            value = trial.square().sum(1)
            if clobber:  # what a replayed graph does to its static output buffers
                g.fill_(123.0)
                l0.fill_(-5.0)
            return value

        rule.begin(z, row_loss)
        return rule.step(z, g, l0, 0)

    assert torch.equal(steps(clobber=True), steps(clobber=False))


def test_the_curvature_runs_in_the_deterministic_kernels_context(monkeypatch: pytest.MonkeyPatch):
    entered = []

    @contextlib.contextmanager
    def kernels(self: Execution):  # type: ignore[no-untyped-def]
        entered.append(True)
        yield

    defense = trained()
    monkeypatch.setattr(Execution, "kernels", kernels)
    z = torch.randn(4, defense.latent_dim, generator=torch.Generator().manual_seed(2))
    x = torch.rand(4, *defense.input_shape) * 2 - 1
    assert largest_curvature(defense, z, defense.execution.format(x), iterations=2).shape == (4,) and entered


def test_a_classifier_on_another_device_is_named_with_both():
    classifier = nn.Linear(3, 2).to("meta")
    with pytest.raises(
        DeviceError, match=r"^the classifier is on meta, but the defence runs on cpu: move it"
    ):
        check_same_device(classifier, torch.device("cpu"), what="the classifier")
    with pytest.raises(DeviceError, match="the classifier is on meta, but the defence runs on cpu"):
        DefendedClassifier(classifier, trained(), "clean-all")
    check_same_device(nn.Linear(3, 2), "cpu", what="the classifier")  # the same device passes
