"""Summarise ``mutmut results --all true`` per module, as a Markdown table, and write the diff
of every surviving mutant next to it (run by tests/mutation.sh).

Each survivor must be explained in docs/quality/equivalent_mutants.md (hand-written: the
mutant's name in backquotes and why no test can tell it from the original); the table counts
the explained ones and the summary lists any that are not."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

NOTES = Path("docs/quality/equivalent_mutants.md")


def main(results: str, table: str, survivors: str) -> None:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    surviving = []
    explained = (
        set(re.findall(r"`(cowboy_core\.[^`]+__mutmut_\d+)`", NOTES.read_text())) if NOTES.exists() else set()
    )
    for line in Path(results).read_text().splitlines():
        if ": " not in line:
            continue
        name, status = (part.strip() for part in line.rsplit(": ", 1))
        module = ".".join(name.split(".")[:2])  # cowboy_core.<module>.<mangled function>
        counts[module][status] += 1
        if status in ("survived", "no tests"):
            surviving.append(name)
            counts[module]["explained"] += name in explained
    rows = [
        "| module | mutants run | killed | survived | explained as equivalent | timed out | no tests "
        "| not run | killed (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total: Counter[str] = Counter()
    for module in sorted(counts):
        total.update(counts[module])
        rows.append(_row(module, counts[module]))
    rows.append(_row("**all**", total))
    if total["killed"] + total["timeout"] + total["survived"] == 0:
        # A run that failed at its start (mutmut could not run the clean tests) lists every
        # mutant as not checked; writing that over the committed report would erase it.
        print(
            f"{results}: no mutant ran; fix the run (see its log) and rerun tests/mutation.sh",
            file=sys.stderr,
        )
        sys.exit(2)
    unexplained = [name for name in surviving if name not in explained]
    Path(table).write_text(
        "# Mutation testing of the algorithm core (written by tests/mutation.sh)\n\n"
        "mutmut 3 mutates every function of the modules in `[tool.mutmut]` and runs the fast\n"
        'tests (`-m "not slow"`) that reach it; a mutant is killed when a test fails. Why each\n'
        f"surviving mutant cannot be killed: [`{NOTES.name}`]({NOTES.name}); their diffs: "
        f"[`{Path(survivors).name}`]({Path(survivors).name}).\n\n"
        + "\n".join(rows)
        + f"\n\nSurvivors not explained there: {len(unexplained)}"
        + "".join(f"\n- `{name}`" for name in unexplained)
        + "\n"
    )
    diffs = [
        subprocess.run(["mutmut", "show", name], capture_output=True, text=True).stdout for name in surviving
    ]
    Path(survivors).write_text("\n".join(diffs))


def _row(module: str, c: Counter[str]) -> str:
    n = sum(c[k] for k in c if k not in ("not checked", "explained"))  # of the mutants this run ran
    killed = c["killed"] + c["timeout"]
    share = 100 * killed / n if n else 0.0
    cells = [
        module,
        n,
        c["killed"],
        c["survived"],
        c["explained"],
        c["timeout"],
        c["no tests"],
        c["not checked"],
    ]
    return "| " + " | ".join(map(str, [*cells, f"{share:.1f}"])) + " |"


if __name__ == "__main__":
    main(*sys.argv[1:4])
