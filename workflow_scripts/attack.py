"""Attack one split's images against the classifier ("none" passes them through unchanged)."""

import sys

from cowboy_core.attacks import AttackSpec, run_attack
from cowboy_core.choices import parse_attack
from cowboy_core.io import save_tensors
from cowboy_core.training import predict
from cowboy_pipeline.runtime import finish_job, load_checked, load_split, stable_offset, start_job

wc = snakemake.wildcards
device = start_job(snakemake, seed_offset=stable_offset(wc.dataset, wc.split, wc.attack))
images, labels, index, meta = load_split(snakemake.input.data, wc.split)
name, _ = parse_attack(wc.attack)  # "fgsm-std" is FGSM at another budget
if name is None:
    # The clean half of the detect-then-clean stream: cleaned like any attack's images.
    adversarial, meta_out = images, {"attack": "none", "epsilon": 0.0, "norm": "none", "steps": 0}
else:
    (classifier,) = load_checked(snakemake.input.classifier, meta, device, "classifier")
    params = snakemake.params.attack
    spec = AttackSpec(name, params["epsilon"], params["steps"], params["rel_stepsize"])
    adversarial = run_attack(classifier.eval(), images, labels, spec, device=device)
    accuracy = (predict(classifier, adversarial, device=device).cpu() == labels).float().mean().item()
    unmoved = int((adversarial.cpu() == images).flatten(1).all(dim=1).sum())  # VAM: no direction found
    print(
        f"{wc.dataset} {wc.split} {wc.attack} eps={spec.epsilon}: accuracy {accuracy:.4f}, "
        f"{unmoved} of {len(images)} images unperturbed",
        file=sys.stderr,
    )
    meta_out = {"attack": wc.attack, "epsilon": spec.epsilon, "norm": spec.name.norm, "steps": spec.steps}
save_tensors(snakemake.output[0], {"adversarial": adversarial, "index": index}, meta_out)
finish_job()
