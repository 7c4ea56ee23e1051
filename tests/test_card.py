"""The defence card is checked field by field on load: a tampered card is refused by
Cowboy.load, DefendedClassifier.load and the command line, with exit code 2 and one line
naming the field, never a traceback or a defence silently switched off."""

import copy
import json
import math
import os
import warnings

import pytest
import torch

from cowboy_core import Cowboy, DefendedClassifier
from cowboy_core.card import CardError, classifier_fingerprint
from cowboy_core.cli import main
from cowboy_core.defended import OtherClassifierWarning
from cowboy_core.models import Classifier, freeze
from cowboy_core.settings import Settings

from .conftest import tamper


@pytest.fixture
def card(tmp_path, tiny_gan, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, Settings(steps=3, optimizer="backtracking"))
    defense.threshold = float(defense.score(images).mean())
    path = tmp_path / "card.safetensors"
    defense.save(path, provenance={"settings": {"source": "test"}})
    return path


def _set(key, value, *, inside=None):
    def edit(header):
        (header[inside] if inside else header)[key] = value

    return edit


def _rename(key, old):
    def edit(header):
        header[old] = header.pop(key)

    return edit


CASES = [
    ("nan threshold", _set("threshold", math.nan), "threshold"),
    ("threshold of 7", _set("threshold", 7), "threshold"),
    ("threshold 'high'", _set("threshold", "high"), "threshold"),
    ("threshold 0", _set("threshold", 0.0), "threshold"),
    ("infinite threshold", _set("threshold", math.inf), "threshold"),
    ("p below 1", _set("threshold_power", 0.5), "threshold_power = 0.5"),
    ("p nan", _set("threshold_power", math.nan), "threshold_power = nan"),
    ("an old card's p", _rename("threshold_power", "p"), "now 'threshold_power'"),
    ("unknown settings key", _set("magic", 1, inside="settings"), "unknown key 'magic'"),
    ("negative steps", _set("steps", -3, inside="settings"), "settings.steps"),
    ("fractional steps", _set("steps", 2.5, inside="settings"), "settings.steps"),
    ("zero lr", _set("lr", 0, inside="settings"), "settings.lr"),
    ("nan sigma", _set("sigma", math.nan, inside="settings"), "settings.sigma"),
    ("unknown optimizer", _set("optimizer", "sgdx", inside="settings"), "settings.optimizer"),
    ("unknown method", _set("method", "magic", inside="settings"), "settings.method"),
    ("zero restarts", _set("restarts", 0, inside="settings"), "settings.restarts"),
    ("boolean restarts", _set("restarts", True, inside="settings"), "settings.restarts"),
    ("unknown top-level key", _set("backdoor", 1), "unknown key 'backdoor'"),
    ("missing threshold", lambda h: h.pop("threshold"), "missing key 'threshold'"),
    ("bad input shape", _set("input_shape", [1, -28, 28]), "input_shape"),
    ("settings not a mapping", _set("settings", [1, 2]), "settings must be a mapping"),
    (
        "classifier record short",
        _set("classifier", {"source": "x", "sha256": "ab"}, inside="provenance"),
        "provenance.classifier",
    ),
    (
        "classifier record a path",
        _set("classifier", "x.safetensors", inside="provenance"),
        "provenance.classifier",
    ),
]


@pytest.mark.parametrize(("name", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_tampered_card_is_refused_everywhere(card, tiny_gan, name, edit, message, capsys):
    bad = tamper(card, edit)
    with pytest.raises(CardError, match=message):
        Cowboy.load(bad)
    classifier = freeze(Classifier(channels=1, image_size=28))
    with pytest.raises(CardError, match=message):
        DefendedClassifier.load(bad, classifier)
    assert main(["show", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message.split()[0].strip("'") in err and "Traceback" not in err


def test_a_good_card_loads_and_shows(card, capsys):
    defense = Cowboy.load(card)
    assert defense.settings.optimizer == "backtracking" and 0 < defense.threshold < 1
    assert main(["show", str(card)]) == 0
    shown = capsys.readouterr().out
    assert "threshold:" in shown and "optimizer: backtracking" in shown and "source: test" in shown


def test_overrides_on_load_are_checked(card):
    with pytest.raises(ValueError, match=r"overrides\.steps"):
        Cowboy.load(card, steps=-1)
    assert Cowboy.load(card, steps=5).settings.steps == 5


def test_a_card_is_checked_before_it_is_written(tiny_gan, tmp_path, images):
    g, d = tiny_gan
    defense = Cowboy(g, d, threshold=float("nan"))
    with pytest.raises(CardError, match="threshold"):
        defense.save(tmp_path / "never.safetensors")
    assert not (tmp_path / "never.safetensors").exists()


@pytest.mark.parametrize("threshold", [float("nan"), 0.0, 1.0, 7.0, float("inf")])
def test_detection_never_runs_with_an_out_of_range_threshold(tiny_gan, images, threshold):
    g, d = tiny_gan
    defense = Cowboy(g, d, threshold=threshold)
    with pytest.raises(ValueError, match="out of range"):
        defense.detect(images)
    classifier = freeze(Classifier(channels=1, image_size=28))
    with pytest.raises(ValueError, match="out of range"):
        DefendedClassifier(classifier, defense, "detect-then-clean")(images)


def test_cli_refuses_an_out_of_range_threshold(card, tmp_path, capsys):
    x = tmp_path / "x.pt"
    torch.save(torch.zeros(2, 1, 28, 28), x)
    code = main(
        [
            "detect",
            "--defense",
            str(card),
            "--images",
            str(x),
            "--out",
            str(tmp_path / "f.csv"),
            "--threshold",
            "nan",
        ]
    )
    assert code == 2 and "threshold" in capsys.readouterr().err


def test_a_card_with_a_model_it_does_not_know_is_refused_by_name(card, tmp_path):
    from safetensors import safe_open

    from cowboy_core.card import read_card
    from cowboy_core.io import load_models, save_models

    models, _ = load_models(card)
    with safe_open(str(card), framework="pt") as handle:
        header = json.loads(handle.metadata()["defense"])
    extra = tmp_path / "extra.safetensors"
    save_models(extra, models | {"critic": copy.deepcopy(models["discriminator"])}, {"defense": header})
    with pytest.raises(CardError) as caught:
        read_card(extra)
    assert str(caught.value) == (
        f"{extra}: unknown model 'critic' in the card; a card holds discriminator, encoder, generator"
    )


def _recorded_card(folder, tiny_gan, classifier):
    """A card whose provenance records ``classifier`` as the one it was chosen for."""
    record = {"source": "classifier_rec.safetensors", "sha256": classifier_fingerprint(classifier)}
    Cowboy(*tiny_gan, Settings(steps=2), threshold=0.5).save(
        folder / "rec.safetensors", provenance={"classifier": record}
    )
    return folder / "rec.safetensors"


def test_a_card_warns_when_deployed_in_front_of_another_classifier_than_it_was_chosen_for(tiny_gan, tmp_path):
    torch.manual_seed(0)
    chosen_for = freeze(Classifier(channels=1, image_size=28, width=4))
    path = _recorded_card(tmp_path, tiny_gan, chosen_for)
    other = freeze(Classifier(channels=1, image_size=28, width=4))
    with pytest.warns(OtherClassifierWarning) as caught:
        DefendedClassifier.load(path, other, "clean-all")
    assert str(caught[0].message) == (
        "this card was chosen in front of classifier_rec.safetensors "
        f"(sha256 {classifier_fingerprint(chosen_for)[:12]}...), and this classifier differs: "
        "the card's validation numbers do not describe it"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the classifier it was chosen for, however wrapped: silent
        DefendedClassifier.load(path, torch.nn.Sequential(copy.deepcopy(chosen_for)), "clean-all")
        DefendedClassifier.load(tmp_path / "rec.safetensors", chosen_for, "clean-all")


@pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ,
    reason="mutmut calls every function through a trampoline, which adds frames between the two",
)
def test_the_other_classifier_warning_names_the_callers_line(tmp_path, tiny_gan):
    chosen_for = freeze(Classifier(channels=1, image_size=28, width=4))
    path = _recorded_card(tmp_path, tiny_gan, chosen_for)
    with pytest.warns(OtherClassifierWarning) as caught:
        DefendedClassifier.load(path, freeze(Classifier(channels=1, image_size=28, width=4)), "clean-all")
    assert caught[0].filename == __file__  # the user's load(), not the library's own lines


def test_the_fingerprint_changes_with_any_weight():
    torch.manual_seed(0)
    classifier = Classifier(channels=1, image_size=28, width=4)
    before = classifier_fingerprint(classifier)
    with torch.no_grad():
        next(classifier.parameters()).view(-1)[0] += 1e-7
    assert classifier_fingerprint(classifier) != before and len(before) == 64
