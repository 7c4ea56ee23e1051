"""The library installs and runs alone: ``pip install .`` brings no pipeline dependency, and no
module of cowboy_core imports the pipeline's package or its tools."""

import ast
import json
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

from cowboy_core.io import save_models
from cowboy_core.models import DCGANDiscriminator, DCGANGenerator

REPO = Path(__file__).resolve().parents[1]
# What only the pipeline needs (the [workflow] extra) and the pipeline's own package.
PIPELINE_ONLY = [
    "cowboy_pipeline",
    "snakemake",
    "snakemake_executor_plugin_slurm",
    "matplotlib",
    "jsonschema",
    "yaml",
    "mlxtend",
]
PIPELINE_DISTRIBUTIONS = {
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "matplotlib",
    "jsonschema",
    "pyyaml",
    "mlxtend",
}


def test_every_public_name_loads_from_its_home():
    """cowboy_core's names load on first use: each one in __all__ resolves, to what its module
    defines, and a name it does not have is an AttributeError (not an ImportError)."""
    import importlib

    import cowboy_core

    assert sorted(cowboy_core.__all__) == sorted(cowboy_core._HOMES)
    for name, home in cowboy_core._HOMES.items():
        defined = getattr(importlib.import_module(f"cowboy_core.{home}"), name)
        assert getattr(cowboy_core, name) is defined, name
        assert defined.__module__ == f"cowboy_core.{home}", name  # the home is where it is defined
    with pytest.raises(AttributeError, match="no attribute 'Cleaner'"):
        _ = cowboy_core.Cleaner  # type: ignore[attr-defined]
    assert set(cowboy_core.__all__) <= set(dir(cowboy_core))


def test_no_library_module_imports_the_pipeline():
    """Read from the source, so that a lazy import inside a function is caught too."""
    found = []
    for path in sorted((REPO / "cowboy_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in PIPELINE_ONLY]
    assert not found


BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {PIPELINE_ONLY!r}:
                raise ImportError(f"{{name}} is the pipeline's, not the library's")
    sys.meta_path.insert(0, Block())
    for name in {PIPELINE_ONLY!r}:
        sys.modules.pop(name, None)
    """
)


def _without_pipeline(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where the pipeline's packages cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: its workflow_scripts/ must not be on the path
    )


@pytest.mark.slow
def _gan_and_images(folder: Path) -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(channels=1, image_size=28, latent_dim=8, width=8)
    d = DCGANDiscriminator(channels=1, image_size=28, width=8)
    save_models(folder / "gan.safetensors", {"generator": g.eval(), "discriminator": d.eval()})
    np.save(folder / "x.npy", np.random.default_rng(0).integers(0, 256, (3, 1, 28, 28), dtype=np.uint8))


def test_every_library_module_and_the_cli_run_without_the_pipeline(tmp_path):
    _gan_and_images(tmp_path)
    proc = _without_pipeline(
        """
        import importlib, pkgutil, cowboy_core
        for module in pkgutil.iter_modules(cowboy_core.__path__):
            importlib.import_module(f"cowboy_core.{module.name}")
        from cowboy_core.cli import main
        code = main(["clean", "--gan", "gan.safetensors", "--images", "x.npy", "--out", "clean.npy",
                     "--steps", "2", "--quiet"])
        print("exit", code)
        """,
        tmp_path,
    )
    assert proc.returncode == 0 and "exit 0" in proc.stdout, proc.stderr[-3000:]
    assert np.load(tmp_path / "clean.npy").shape == (3, 1, 28, 28)
    help_text = _without_pipeline("from cowboy_core.cli import main\nmain(['--help'])", tmp_path)
    assert help_text.returncode == 0 and "clean" in help_text.stdout


@pytest.mark.slow
def test_the_library_installs_alone_into_a_fresh_virtualenv_and_cleans(tmp_path):
    """pip's own resolution of ``pip install .`` in a fresh virtualenv holds no pipeline
    dependency. Then the library itself is installed there (its console script included) and
    run with the pipeline's packages blocked; torch and the other runtime dependencies are
    borrowed from this environment rather than installed again (6 GB of CUDA wheels)."""
    env = tmp_path / "fresh"
    venv.create(env, with_pip=True)
    python, report = env / "bin" / "python", tmp_path / "report.json"
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--dry-run", "--ignore-installed", "--report", str(report), str(REPO)], check=True)
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"cowboy", "torch", "torchvision", "safetensors", "pandas"} <= names
    assert not names & PIPELINE_DISTRIBUTIONS
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True, capture_output=True)
    site = next((env / "lib").glob("python3*/site-packages"))
    outer = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "_block_pipeline.py").write_text(BLOCKER)
    (site / "zz_borrowed.pth").write_text(f"import _block_pipeline\n{outer}\n")
    where = subprocess.run([str(python), "-c", "import cowboy_core; print(cowboy_core.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)  # fmt: skip
    assert where.stdout.startswith(str(env))  # the installed copy, not this checkout
    cowboy = str(env / "bin" / "cowboy")
    assert "clean" in subprocess.run([cowboy, "--help"], capture_output=True, text=True, check=True).stdout
    _gan_and_images(tmp_path)
    args = ["clean", "--gan", "gan.safetensors", "--images", "x.npy", "--out", "clean.npy", "--steps", "2"]
    done = subprocess.run([cowboy, *args, "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.load(tmp_path / "clean.npy").shape == (3, 1, 28, 28)
