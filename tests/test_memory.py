"""Rows planned from a memory budget: the per-row estimate against autograd's saved tensors,
the plan's arithmetic, and one-line errors when memory cannot fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cowboy_core import Cowboy, Execution, Settings
from cowboy_core.memory import (
    Job,
    MemoryPlanError,
    activations_per_row,
    out_of_memory_message,
    parse_bytes,
    plan_rows,
    row_bytes,
)
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator

ROWS = 16


def saved_bytes(models: list[torch.nn.Module], run) -> int:  # type: ignore[no-untyped-def]
    """Bytes of the distinct storages autograd saves while ``run()`` builds its graph, but for
    the weights of ``models`` (saved too, but once per chunk, not per row)."""
    weights = {p.untyped_storage().data_ptr() for m in models for p in m.parameters()}
    storages: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def defense(width: int, steps: int) -> Cowboy:
    torch.manual_seed(width)
    generator = DCGANGenerator(channels=1, image_size=28, latent_dim=100, width=width)
    discriminator = DCGANDiscriminator(channels=1, image_size=28, width=width)
    return Cowboy(generator, discriminator, Settings(steps=steps), execution=Execution(batch_size=ROWS))


def estimate(cowboy: Cowboy, job: Job) -> int:
    first = torch.zeros(1, cowboy.latent_dim)
    activations = activations_per_row([cowboy.generator, cowboy.discriminator], first)
    return row_bytes(activations, job, steps=cowboy.settings.steps)


@pytest.mark.parametrize("width", [32, 64])
def test_the_cleaning_estimate_is_within_20_percent_of_the_saved_tensors(width: int):
    cowboy = defense(width, steps=1)
    x = cowboy.execution.format(torch.rand(ROWS, 1, 28, 28) * 2 - 1)
    z = torch.randn(ROWS, 100, requires_grad=True)
    measured = saved_bytes([cowboy.generator, cowboy.discriminator], lambda: cowboy.objective(z, x)) / ROWS
    assert estimate(cowboy, Job.CLEANING) == pytest.approx(measured, rel=0.2)


@pytest.mark.parametrize("width", [32, 64])
@pytest.mark.parametrize("steps", [4, 12])
def test_the_unrolled_estimate_is_within_20_percent_of_the_saved_tensors(width: int, steps: int):
    cowboy = defense(width, steps=steps)
    x = (torch.rand(ROWS, 1, 28, 28) * 2 - 1).requires_grad_(True)
    measured = saved_bytes([cowboy.generator, cowboy.discriminator], lambda: cowboy.clean_unrolled(x)) / ROWS
    assert estimate(cowboy, Job.UNROLLED) == pytest.approx(measured, rel=0.2)
    assert estimate(cowboy, Job.UNROLLED) > steps * estimate(cowboy, Job.CLEANING)


def test_rows_fill_half_the_budget_in_multiples_of_64_up_to_4096():
    assert plan_rows(2**30, 1_000_000) == 512  # half of 1 GiB holds 536 rows of 1 MB
    assert plan_rows(80 * 10**9, 100) == 4096
    assert plan_rows(10**9, 10**7) == 50  # below one multiple: every row that fits
    assert plan_rows(2**30, 1_000_000) == plan_rows(2**30, 1_000_000)  # the same inputs, the same rows
    with pytest.raises(MemoryPlanError, match=r"needs 4 row\(s\) at 400.0 MB each.*raise COWBOY_GPU_MEMORY"):
        plan_rows(10**9, 4 * 10**8, minimum=4)


def test_the_budget_is_read_from_cowboy_gpu_memory(monkeypatch: pytest.MonkeyPatch):
    assert (
        parse_bytes("40G") == 40 * 2**30
        and parse_bytes("512M") == 512 * 2**20
        and parse_bytes("1000") == 1000
    )
    with pytest.raises(MemoryPlanError, match="COWBOY_GPU_MEMORY='lots' is not a size"):
        parse_bytes("lots")
    monkeypatch.setenv("COWBOY_GPU_MEMORY", "1G")
    cuda = Execution(device="cuda")
    assert cuda.planned_rows(lambda: 1_000_000) == 512 and cuda.budget() == 2**30
    assert Execution(device="cuda", batch_size=8).planned_rows(lambda: 10**12) == 8  # a fixed size wins
    assert (
        Execution().planned_rows(lambda: 10**12) == Execution().rows and Execution().budget() is None
    )  # CPU: unplanned


def test_an_attack_plans_its_plain_and_unrolled_chunks_alike(monkeypatch: pytest.MonkeyPatch):
    """On CUDA the unrolled rows are fewer; an attack's Execution (Job.UNROLLED) cleans at them
    too, so that its plain and unrolled cleanings run the same chunks and agree to the bit."""
    monkeypatch.setenv("COWBOY_GPU_MEMORY", "8G")
    costs = {Job.CLEANING: 10**5, Job.UNROLLED: 10**7}
    monkeypatch.setattr(
        Cowboy, "_planned_rows", lambda self, job: self.execution.planned_rows(lambda: costs[job])
    )
    plain = Cowboy.__new__(Cowboy)
    plain.execution = Execution(device="cuda")
    assert plain._planned_rows(Job.CLEANING) == 4096 and plain._planned_rows(Job.UNROLLED) == 384


def test_running_out_of_memory_names_the_rows_the_budget_and_the_setting():
    message = out_of_memory_message(
        2048, 40 * 10**9, RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore")
    )
    assert message == (
        "CUDA ran out of memory at 2048 rows per chunk (memory budget 40.00 GB): lower COWBOY_GPU_MEMORY "
        "or set COWBOY_BATCH_SIZE below 2048 (CUDA out of memory. Tried to allocate 2 GiB)"
    )
    assert "\n" not in message


@pytest.mark.parametrize("width", [32, 64])
def test_the_gan_training_estimate_is_within_20_percent_of_its_discriminator_step(width: int):
    """The larger of a GAN step's two updates: D on a real and a fake row (G's graph kept)."""
    torch.manual_seed(width)
    generator = DCGANGenerator(channels=1, image_size=28, latent_dim=100, width=width)
    discriminator = DCGANDiscriminator(channels=1, image_size=28, width=width)
    generator.eval(), discriminator.eval()
    activations = activations_per_row([generator, discriminator], torch.zeros(1, 100))
    generator.train(), discriminator.train()
    real, z = torch.rand(ROWS, 1, 28, 28) * 2 - 1, torch.randn(ROWS, 100)
    losses = []

    def discriminator_update() -> None:
        fake = generator(z)
        losses.append(
            F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        )

    measured = saved_bytes([generator, discriminator], discriminator_update)
    assert losses[0].requires_grad
    assert row_bytes(activations, Job.TRAINING) == pytest.approx(measured / ROWS, rel=0.2)


def test_a_training_batch_that_cannot_fit_is_refused_before_training(monkeypatch: pytest.MonkeyPatch):
    from cowboy_core import memory

    monkeypatch.setenv("COWBOY_GPU_MEMORY", "1M")
    generator = DCGANGenerator(channels=1, image_size=28, latent_dim=100, width=8)
    discriminator = DCGANDiscriminator(channels=1, image_size=28, width=8)
    first = torch.zeros(1, 100)
    memory.check_batch_fits([generator, discriminator], first, 64, Job.TRAINING)  # the CPU: nothing to plan
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("cuda")))
    with pytest.raises(MemoryPlanError, match=r"a chunk needs 64 row\(s\) at .* raise COWBOY_GPU_MEMORY"):
        memory.check_batch_fits([generator, discriminator], first, 64, Job.TRAINING)
    assert generator.training and discriminator.training  # their mode restored
