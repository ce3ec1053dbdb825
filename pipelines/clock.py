"""Where an ingest's time goes, step by step: wall and this thread's CPU per step name.

Off by default (a no-op). The ingest benchmark turns it on for the plain loop, where steps run
one after another, so each row is that step's cost; a step offloaded to a child process shows its
wall time here and its CPU in the child's. It also keeps the texts each document embedded, so
the benchmark can time the model alone on exactly those.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from contracts.ingest import INGEST_STEPS


@dataclass
class StepClock:
    on: bool = False
    wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    embedded: list[list[str]] = field(default_factory=list)

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        if not self.on:
            yield
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.wall[step] += time.perf_counter() - wall
            self.cpu[step] += time.thread_time() - cpu

    def texts(self, texts: list[str]) -> None:
        if self.on:
            self.embedded.append(list(texts))

    def table(self, docs: int) -> list[str]:
        """Rows `step  wall ms/doc  cpu ms/doc  share of wall`, in the pipeline's order
        (`contracts.ingest.INGEST_STEPS`), then what lies around the steps, the costliest first."""
        total = sum(self.wall.values()) or 1.0
        rows = [f"  {'step':<22}{'wall ms/doc':>12}{'cpu ms/doc':>12}{'share':>8}"]
        order = {step: i for i, step in enumerate(("begin", *INGEST_STEPS))}
        for step, wall in sorted(self.wall.items(), key=lambda kv: (order.get(kv[0], len(order)), -kv[1])):
            cpu = self.cpu[step]
            rows.append(f"  {step:<22}{wall / docs * 1000:>12.1f}{cpu / docs * 1000:>12.1f}{wall / total:>8.1%}")
        rows.append(f"  {'all steps':<22}{total / docs * 1000:>12.1f}{sum(self.cpu.values()) / docs * 1000:>12.1f}")
        return rows
