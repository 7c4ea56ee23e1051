"""A sentence in a doc states only what a committed number shows: every number in a sentence
of the README or docs/reproduction/*.md that names a committed CSV or JSON must appear in
that file (to the precision the sentence prints it)."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]
FILE = re.compile(r"[\w./-]+\.(?:csv|json)\b")
# A number as prose writes it: 0.738, 5,989, -0.075, 1e-4, 25; not inside a word (fig5, 28x28).
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e-?\d+)?(?![\w.]*[A-Za-z_/])")


def sentences(text: str) -> list[str]:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # code blocks are commands, not claims
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(`*\[])|\n\n|\n\||\n- ", text)  # sentences, rows, items
    return [s for s in parts if FILE.search(s)]


def file_numbers(path: Path) -> list[float]:
    text = path.read_text(errors="replace")
    return [float(t) for t in re.findall(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]


def shown_in(token: str, numbers: list[float]) -> bool:
    value = float(token.replace(",", ""))
    decimals = len(token.split(".")[1].split("e")[0]) if "." in token and "e" not in token else 0
    if "e" in token:
        return any(abs(n - value) <= abs(value) * 1e-9 for n in numbers)
    step = 10.0**-decimals
    # Sign-insensitive: prose says "fell by 0.075" where a file stores -0.075.
    return any(abs(abs(n) - abs(value)) <= step / 2 + 1e-12 for n in numbers)


def _fraction(percent: str) -> str:
    """A percentage as the fraction a file stores: 37 -> 0.37, 0.8 -> 0.008."""
    decimals = len(percent.split(".")[1]) if "." in percent else 0
    return f"{float(percent.replace(',', '')) / 100:.{decimals + 2}f}"


def resolve(name: str, doc: Path) -> Path | None:
    """The committed file a sentence names (``results/`` is git-ignored: what a run writes)."""
    if name.startswith("results/"):
        return None
    for base in (doc.parent, REPO, REPO / "docs" / "reproduction", REPO / "benchmarks" / "results"):
        for candidate in (base / name, base / Path(name).name):
            if candidate.is_file():
                return candidate
    return None


def claims():
    for doc in DOCS:
        for sentence in sentences(doc.read_text()):
            files = [f for f in (resolve(n, doc) for n in FILE.findall(sentence)) if f is not None]
            if files:
                yield doc, sentence, files


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_number_beside_a_named_file_is_in_that_file(doc):
    missing = []
    for where, sentence, files in claims():
        if where != doc:
            continue
        numbers = [n for f in files for n in file_numbers(f)]
        prose = FILE.sub(
            " ", re.sub(r"`[^`]*`", lambda m: " " if FILE.search(m.group()) else m.group(), sentence)
        )
        prose = re.sub(r"95% (\w+ )?intervals?", " ", prose)  # a confidence level, not a result
        prose = re.sub(r"paper(?:'s)? [-+]?\d[\d.]*", " ", prose)  # the paper's numbers are the paper's
        for match in NUMBER.finditer(prose):
            token = match.group()
            percent = prose[match.end() : match.end() + 1] == "%" or prose[match.end() :].startswith("-")
            if not (shown_in(token, numbers) or (percent and shown_in(_fraction(token), numbers))):
                missing.append(f"{token!r} in: {' '.join(sentence.split())[:160]}")
    assert not missing, "\n".join(missing)


def test_one_quantity_has_one_value_across_the_committed_runs():
    """The which-defence summary (which the README's findings cite) and each run's own
    which_defence.csv (which docs/reproduction/adaptive.md cites) give the same clean and robust
    accuracy for the same defence, policy, epsilon and run: one number, one source."""
    import pandas as pd
    import yaml

    runs = yaml.safe_load((REPO / "docs/reproduction/which-defence.yaml").read_text())["which_defence"][
        "runs"
    ]
    summary = pd.read_csv(REPO / "docs/reproduction/which_defence_summary.csv")
    keys = ["dataset", "defense", "policy", "epsilon"]
    checked = 0
    for run in runs:
        own = pd.read_csv(REPO / run["points"])
        own = own[own["run"] == "this run"]
        mine = summary[summary["run"] == run["label"]]
        both = own.merge(mine, on=keys, suffixes=("_run", "_summary"))
        assert len(both) >= 1, f"{run['label']}: none of its points is in the summary"
        for column in ("clean_accuracy", "robust_accuracy"):
            differ = both[(both[f"{column}_run"] - both[f"{column}_summary"]).abs() > 1e-12]
            assert differ.empty, f"{run['label']}: {column} differs: {differ[keys].to_dict('records')}"
        checked += len(both)
    assert checked >= 10
