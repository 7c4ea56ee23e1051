"""Summarise ``mutmut results --all true`` per module, as a Markdown table, and write the diff
of every surviving mutant next to it (run by tests/mutation.sh)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path


def main(results: str, table: str, survivors: str) -> None:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    surviving = []
    for line in Path(results).read_text().splitlines():
        if ": " not in line:
            continue
        name, status = (part.strip() for part in line.rsplit(": ", 1))
        module = ".".join(name.split(".")[:2])  # cowboy_core.<module>.<mangled function>
        counts[module][status] += 1
        if status in ("survived", "no tests"):
            surviving.append(name)
    rows = [
        "| module | mutants run | killed | survived | timed out | no tests | not run | killed (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total: Counter[str] = Counter()
    for module in sorted(counts):
        c = counts[module]
        total.update(c)
        rows.append(_row(module, c))
    rows.append(_row("**all**", total))
    Path(table).write_text(
        "# Mutation testing of the algorithm core (written by tests/mutation.sh)\n\n"
        "mutmut 3 mutates every function of the modules in `[tool.mutmut]` and runs the fast\n"
        'tests (`-m "not slow"`) that reach it; a mutant is killed when a test fails.\n\n'
        + "\n".join(rows)
        + "\n"
    )
    diffs = [
        subprocess.run(["mutmut", "show", name], capture_output=True, text=True).stdout for name in surviving
    ]
    Path(survivors).write_text("\n".join(diffs))


def _row(module: str, c: Counter[str]) -> str:
    n = sum(c.values()) - c["not checked"]  # of the mutants this run ran
    killed = c["killed"] + c["timeout"]
    share = 100 * killed / n if n else 0.0
    cells = [
        module,
        n,
        c["killed"],
        c["survived"],
        c["timeout"],
        c["no tests"],
        c["not checked"],
        f"{share:.1f}",
    ]
    return "| " + " | ".join(map(str, cells)) + " |"


if __name__ == "__main__":
    main(*sys.argv[1:4])
