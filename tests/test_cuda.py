"""The CUDA path: the same algorithm as on the CPU, batch-invariant on the device, and the
deployed pieces (card, defended classifier, attacks) running there. Skipped without a GPU;
benchmarks/gpu_check.sh runs them on one (``pytest -m cuda``)."""

from pathlib import Path

import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier, Execution, Job
from cowboy_core.attacks import AttackSpec, run_attack
from cowboy_core.choices import AttackName
from cowboy_core.io import load_models
from cowboy_core.models import Classifier, freeze
from cowboy_core.settings import Settings

from .conftest import saved_card

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)"),
]


def _defense(tiny_gan, device: str, **execution: object) -> Cowboy:  # type: ignore[no-untyped-def]
    settings = Settings(steps=5, restarts=2, optimizer="momentum", lr=0.01)
    return Cowboy(*tiny_gan, settings, execution=Execution(device=device, **execution))  # type: ignore[arg-type]


def test_cleaning_on_the_gpu_matches_the_cpu_up_to_float_rounding(tiny_gan, images):
    cpu = _defense(tiny_gan, "cpu").clean(images)
    gpu = _defense(tiny_gan, "cuda").clean(images.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


def test_an_inputs_cleaning_on_the_gpu_does_not_depend_on_its_batch(tiny_gan, images):
    defense = _defense(tiny_gan, "cuda", batch_size=4)
    x = images.cuda()
    together = defense.clean(x)
    for i in range(x.shape[0]):
        assert torch.equal(defense.clean(x[i : i + 1])[0], together[i])
    assert torch.equal(defense.clean(x.flip(0)).flip(0), together)


def test_compiled_cleaning_computes_the_same_map(tiny_gan, images):
    eager = _defense(tiny_gan, "cuda").clean(images.cuda())
    compiled = _defense(tiny_gan, "cuda", compile=True).clean(images.cuda())
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)


def test_the_unrolled_gradient_flows_on_the_gpu(tiny_gan, images):
    x = images.cuda().requires_grad_(True)
    cleaned = _defense(tiny_gan, "cuda").clean_unrolled(x)
    (grad,) = torch.autograd.grad(cleaned.square().sum(), x)
    assert grad.device.type == "cuda" and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_a_card_deploys_on_the_gpu(tiny_gan, images, tmp_path):
    path, _ = saved_card(tmp_path, *tiny_gan, images, steps=3)
    classifier = freeze(Classifier(channels=1, image_size=28)).cuda()
    defended = DefendedClassifier.load(path, classifier, "clean-all", execution=Execution(device="cuda"))
    logits = defended.defend(images.cuda())[0]
    assert defended.defense.device.type == "cuda" and logits.shape == (images.shape[0], 10)
    cpu = DefendedClassifier.load(path, classifier.cpu(), "clean-all").defend(images)[0]
    assert (logits.cpu().argmax(1) == cpu.argmax(1)).float().mean() >= 5 / 6


def test_attacks_run_on_the_gpu_within_their_budget(images):
    model = freeze(Classifier(channels=1, image_size=28))
    labels = torch.arange(images.shape[0]) % 10
    adversarial = run_attack(model, images, labels, AttackSpec(AttackName.PGD, 0.1, steps=3), device="cuda")
    assert float((adversarial.cpu() - images).abs().max()) <= 0.1 * 2 + 1e-5  # [-1, 1] pixels


TRAINED = Path(__file__).parent / "fixtures" / "trained_gan.safetensors"


def test_batch_invariance_at_the_production_chunk_on_a_trained_gan():
    """At the rows production plans on this GPU (up to 4,096), not a toy chunk: an input's
    cleaning is the same bits alone, in a full chunk and in a padded one."""
    gan = load_models(TRAINED)[0]
    settings = Settings(steps=10, optimizer="backtracking", lr=0.05)
    defense = Cowboy(gan["generator"], gan["discriminator"], settings, execution=Execution(device="cuda"))
    assert defense.rows >= 64 and defense.rows % 64 == 0
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(defense.rows + 5, *defense.input_shape, generator=generator) * 2 - 1).cuda()
    together = defense.clean(x)
    for i in (0, 1, defense.rows - 1, defense.rows, x.shape[0] - 1):
        assert torch.equal(defense.clean(x[i : i + 1])[0], together[i]), i


def test_an_attack_cleans_its_plain_and_unrolled_maps_to_the_same_bits():
    gan = load_models(TRAINED)[0]
    settings = Settings(steps=5, optimizer="backtracking", lr=0.05)
    execution = Execution(device="cuda", job=Job.UNROLLED)
    defense = Cowboy(gan["generator"], gan["discriminator"], settings, execution=execution)
    x = (torch.rand(7, *defense.input_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1).cuda()
    assert defense.rows == defense.unrolled_rows
    assert torch.equal(defense.clean(x), defense.clean_unrolled(x.clone().requires_grad_(True)).detach())


def test_the_deployment_gives_the_same_logits_alone_as_in_its_stream(tiny_gan, images, tmp_path):
    """The deployment rule's strict check, on the GPU: every row of a stream defended again
    from scratch, alone, by a freshly loaded defence, gives the same logits to the bit."""
    path, _ = saved_card(tmp_path, *tiny_gan, images, steps=3)
    classifier = freeze(Classifier(channels=1, image_size=28)).cuda()
    for policy in ("detect-then-clean", "clean-all", "reject"):
        stream = DefendedClassifier.load(path, classifier, policy, execution=Execution(device="cuda"))
        logits = stream.defend(images.cuda())[0]
        for i in range(images.shape[0]):
            fresh = DefendedClassifier.load(path, classifier, policy, execution=Execution(device="cuda"))
            alone = fresh.defend(images[i : i + 1].cuda())[0]
            assert torch.equal(alone[0].nan_to_num(-1.0), logits[i].nan_to_num(-1.0)), (policy, i)
