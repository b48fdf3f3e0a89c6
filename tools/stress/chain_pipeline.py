"""Writes a user module holding a pipeline of many tiny steps: independent chains.

``write_chains(folder, chains=25, length=8)`` writes ``chains_pipeline.py`` with
``chains * length`` step functions ``c<chain>_s<k>``; the first step of a chain
returns its chain number, every further step adds one to its input. The pipeline
object is ``chains_pipeline``; run it with
``stepwire run <folder>/chains_pipeline.py:chains_pipeline``.
"""

from __future__ import annotations

from pathlib import Path

MODULE = "chains_pipeline"


def step_name(chain: int, position: int) -> str:
    """The name of step ``position`` (0-based) of chain ``chain``."""
    return f"c{chain}_s{position}"


def write_chains(folder: Path, chains: int, length: int) -> Path:
    """Writes the module and returns its path.

    Args:
        folder: Where to write ``chains_pipeline.py``.
        chains: Number of independent chains.
        length: Steps per chain.

    Returns:
        The module file.
    """
    lines = [
        '"""Generated: independent chains of tiny steps."""',
        "",
        "from stepwire.pipelines import pipeline",
        "from stepwire.steps import step",
        "",
    ]
    for chain in range(chains):
        for position in range(length):
            name = step_name(chain, position)
            lines.append("@step")
            if position == 0:
                lines += [f"def {name}() -> int:", f"    return {chain}", ""]
            else:
                lines += [f"def {name}(value: int) -> int:", "    return value + 1", ""]
    names = [step_name(c, p) for c in range(chains) for p in range(length)]
    lines.append("@pipeline")
    lines.append(f"def chains({', '.join(names)}) -> None:")
    for chain in range(chains):
        previous = f"{step_name(chain, 0)}()"
        for position in range(1, length):
            previous = f"{step_name(chain, position)}(value={previous})"
        lines.append(f"    {previous}")
    lines.append("")
    lines.append(f"{MODULE} = chains({', '.join(f'{n}={n}()' for n in names)})")
    path = folder / f"{MODULE}.py"
    path.write_text("\n".join(lines) + "\n")
    return path
