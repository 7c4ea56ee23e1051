"""The CUDA path: the same algorithm as on the CPU, batch-invariant on the device, and the
deployed pieces (card, defended classifier, attacks) running there. Skipped without a GPU;
benchmarks/gpu_check.sh runs them on one (``pytest -m cuda``)."""

import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier, Execution
from cowboy_core.attacks import AttackSpec, run_attack
from cowboy_core.choices import AttackName
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
