"""Print the README's placement table ("The ladders"): the Dolly ladder in bfloat16 with 110 GiB of RAM on
one GPU of each size, as sizebench.engines.hf.placement (the loader's placement) decides it from the configs.

    python scripts/placement_table.py    # paste the output over the table in README.md
"""

from __future__ import annotations

from sizebench.engines.hf import placement
from sizebench.measurement.memory import GIB
from sizebench.planning.registry import GROUPS, builtin
from sizebench.specs.models import known_config

GPUS = (("16 GiB GPU (T4)", 15), ("24 GiB GPU (A10, L4)", 22), ("80 GiB GPU (A100, H100)", 79))  # GiB free
RAM_GIB = 110


def cell(placed: placement.Placement) -> str:
    if placed.kind == "offload":
        return f"offload, {placed.cpu_bytes / GIB:.1f} GiB to CPU"
    return {"one-gpu": "one GPU", "shard": "sharded"}.get(placed.kind, placed.kind)


def main() -> None:
    print("| model | " + " | ".join(label for label, _ in GPUS) + " |")
    print("|---|" + "---|" * len(GPUS))
    for name in GROUPS["dolly"]:
        config = known_config(builtin(name))
        cells = [cell(placement.place(config, "bfloat16", [free * GIB], RAM_GIB * GIB, name=name)) for _, free in GPUS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
