"""Benchmark: Grammalecte's load time and its check time per appréciation, after load.

Each run is a fresh process (the load is once per process): import and load, the first parse
that compiles the rules, then --repeat rounds over a set of real appréciations (correct ones,
ones with grammar errors, with misspellings, with the school's typographic spaces missing).

    python bench/grammar.py
    python bench/grammar.py --repeat 50 --spaces narrow

It is a benchmark, not a test: see bench/README.md for figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = [
    "Élève sérieuse et impliquée, dont les résultats sont en progrès. Les efforts fournis à"
    " l'écrit doivent être poursuivis.",
    "Trimestre satisfaisant : la participation orale reste discrète mais le travail est régulier.",
    "Les élèves est sérieux.",
    "Elle progresse a l'écrit, il faut poursuivre ces efforts !",
    "Un travail sérieu et des résultat encourageant ; des lacunes à combler en méthode.",
    "Ensemble encourageant, avec une réelle implication en classe. Il faut maintenant gagner en"
    " rigueur dans l'apprentissage des leçons pour consolider les acquis du trimestre.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--spaces", default="nbsp", choices=["none", "narrow", "nbsp"])
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appreciation_site.settings.test")
    import django

    django.setup()
    from generation import grammar

    started = time.perf_counter()
    status = grammar.status()
    load = time.perf_counter() - started
    if not status.available:
        raise SystemExit(f"Grammalecte unavailable: {status.detail}")
    times = []
    flags = 0
    for _ in range(args.repeat):
        for text in TEXTS:
            begin = time.perf_counter()
            flags += len(grammar.check(text, typographic_spaces=args.spaces))
            times.append(time.perf_counter() - begin)
    times.sort()
    print(f"{status.detail}; Python {platform.python_version()}, {os.cpu_count()} CPU(s)")
    print(f"load (import, dictionary, first parse): {load * 1000:.0f} ms")
    print(
        f"check per text ({len(times)} checks, {len(TEXTS)} texts, spaces={args.spaces}):"
        f" median {statistics.median(times) * 1000:.1f} ms,"
        f" p95 {times[int(len(times) * 0.95) - 1] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms;"
        f" {flags // args.repeat} flags per round"
    )


if __name__ == "__main__":
    main()
