import pytest
import torch

from cowboy_core.attacks import AttackSpec, run_attack
from cowboy_core.choices import AttackName
from cowboy_core.models import Classifier
from cowboy_core.training import predict, train_classifier
from cowboy_pipeline.toy import fgsm, two_gaussians


@pytest.fixture(scope="module")
def model_and_data():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    y = (x.mean(dim=(1, 2, 3)) > 0).long()  # learnable rule
    model = train_classifier(Classifier(channels=1, image_size=28, width=4), x, y, steps=30, batch_size=32)
    return model, x[:16], y[:16]


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mim"])
def test_linf_attacks_stay_in_the_ball_and_bounds(model_and_data, name):
    model, x, y = model_and_data
    spec = AttackSpec(AttackName.parse(name), epsilon=0.1, steps=3)
    adv = run_attack(model, x, y, spec, batch_size=8)
    assert adv.shape == x.shape
    assert (adv - x).abs().max() <= 2 * 0.1 + 1e-5  # [0, 1] epsilon doubled for [-1, 1]
    assert adv.min() >= -1 and adv.max() <= 1
    assert not torch.equal(adv, x)


def test_vam_is_an_l2_attack(model_and_data):
    model, x, y = model_and_data
    adv = run_attack(model, x, y, AttackSpec(AttackName.VAM, epsilon=0.5, steps=1))
    norms = (adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= 2 * 0.5 + 1e-4  # L2 ball of 0.5 in [0, 1] units = 1.0 in [-1, 1]
    assert norms.min() > 0.5  # it spends the budget: a VAM that does nothing fails here
    assert (adv - x).abs().max() < 2 * 0.5  # and it is not an L-inf step of the same size
    assert AttackName.VAM.norm == "l2" and AttackName.FGSM.norm == "linf"


def test_fgsm_lowers_accuracy_on_the_toy():
    points, labels = two_gaussians(400, seed=0)
    model = train_classifier(
        torch.nn.Sequential(torch.nn.Linear(2, 2)), points, labels, steps=200, batch_size=64, lr=0.05
    )
    clean = (predict(model, points) == labels).float().mean()
    adv = (predict(model, fgsm(model, points, labels, 3.0)) == labels).float().mean()
    assert adv < clean - 0.3


def test_bad_attack_arguments():
    with pytest.raises(ValueError, match="allowed: fgsm, pgd, bim, mim, vam"):
        AttackName.parse("cw")
    with pytest.raises(ValueError, match="epsilon"):
        AttackSpec(AttackName.FGSM, epsilon=0)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        run_attack(
            torch.nn.Flatten(),
            torch.full((1, 1, 28, 28), 5.0),
            torch.zeros(1, dtype=torch.long),
            AttackSpec(AttackName.FGSM, 0.1),
        )


class _Saturated(torch.nn.Module):
    """Logits so far apart that float32's softmax is exactly one-hot: VAM's KL gradient is zero."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(dim=1, keepdim=True)
        return torch.cat([self.scale * mean, -self.scale * mean], dim=1)


def test_vam_never_returns_nan_where_the_classifier_is_saturated(model_and_data):
    _, x, y = model_and_data
    x = x.clamp(0.2, 1.0)  # every mean well away from 0: saturated everywhere at scale 1e6
    adv = run_attack(_Saturated(1e6), x, y, AttackSpec(AttackName.VAM, epsilon=0.5, steps=1))
    assert torch.isfinite(adv).all()
    assert torch.equal(adv, x)  # no direction moves the output: the image comes back unperturbed


def test_vam_retries_with_a_wider_difference_where_the_first_vanishes(model_and_data):
    _, x, y = model_and_data
    x = x.clamp(0.2, 1.0)
    # At scale 100 the softmax is one-hot to float32 within xi = 1e-6 of the image, not within 1e-2.
    adv = run_attack(_Saturated(100.0), x, y, AttackSpec(AttackName.VAM, epsilon=0.5, steps=1))
    assert torch.isfinite(adv).all()
    norms = (adv - x).flatten(1).norm(dim=1)
    assert norms.min() > 0.5  # the retry found a direction and spent the budget
