"""Write pets.csv and new-pets.csv, the small CSV pair of the README's command-line example.

pets.csv: 40 animals (id, weight in kg, color, age in years, kind cat or dog); new-pets.csv: 6
more without the kind, to predict. Cats weigh 3-6 kg, dogs 8-35 kg, so the kind is learnable
from the weight; color and age carry no information. The draw is seeded: running this script
again writes the same two files.

    python examples/data/make_pets.py            # writes them beside this script
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

COLORS = ["black", "brown", "white", "grey"]
HERE = Path(__file__).resolve().parent


def animal(rng: random.Random, kind: str) -> dict:
    weight = rng.uniform(3.0, 6.0) if kind == "cat" else rng.uniform(8.0, 35.0)
    return {"weight": f"{weight:.1f}", "color": rng.choice(COLORS), "age": rng.randint(1, 14), "kind": kind}


def write(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(folder: Path = HERE) -> None:
    rng = random.Random(2024)
    kinds = ["cat", "dog"] * 23
    rng.shuffle(kinds)
    rows = [{"id": i + 1, **animal(rng, kind)} for i, kind in enumerate(kinds)]
    write(folder / "pets.csv", rows[:40], ["id", "weight", "color", "age", "kind"])
    write(folder / "new-pets.csv", rows[40:], ["id", "weight", "color", "age"])
    print(f"wrote {folder / 'pets.csv'} (40 rows) and {folder / 'new-pets.csv'} (6 rows)")


if __name__ == "__main__":
    main()
