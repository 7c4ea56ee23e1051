"""Attack one split's images with one attack against the classifier."""

from cowboy_core.attacks import AttackName, AttackSpec, run_attack
from cowboy_core.io import load_models, save_tensors
from cowboy_core.runtime import load_split, stable_offset, start_job
from cowboy_core.training import predict

wc = snakemake.wildcards
device = start_job(snakemake, seed_offset=stable_offset(wc.dataset, wc.split, wc.attack))
params = snakemake.params.attack
images, labels, index, meta = load_split(snakemake.input.data, wc.split)
models, _ = load_models(
    snakemake.input.classifier,
    device=device,
    expect={"classifier": {"channels": meta["channels"]}},
)
classifier = models["classifier"].eval()
spec = AttackSpec(AttackName.parse(wc.attack), params["epsilon"], params["steps"], params["rel_stepsize"])
adversarial = run_attack(classifier, images, labels, spec, device=device)
accuracy = (predict(classifier, adversarial, device=device).cpu() == labels).float().mean().item()
print(
    f"{wc.dataset} {wc.split} {wc.attack} eps={spec.epsilon}: accuracy {accuracy:.4f}",
    file=__import__("sys").stderr,
)
save_tensors(
    snakemake.output[0],
    {"adversarial": adversarial, "index": index},
    {"attack": wc.attack, "epsilon": spec.epsilon, "norm": spec.name.norm, "steps": spec.steps},
)
