"""On failure, the shortest reproduction we can find: the same seed with fewer patients
(delta debugging over the patient set), then a shorter schedule (nobody acts after day N),
keeping a candidate only if the same invariant still fails. Bounded by a number of re-runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.engine import SimResult, simulate
from sim.scenario import SimConfig


@dataclass
class Shrunk:
    config: SimConfig
    invariant: str
    runs: int
    trace: list = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        patients = sorted(self.config.subset) if self.config.subset is not None else "all"
        lines = [f"  shortest reproduction found ({self.runs} re-runs): patients {patients}, "
                 f"days {self.config.max_days or 'all'}",
                 f"    {self.config.reproduce_command()}",
                 f"    still fails {self.invariant}:"]
        lines += [f"      {d}" for d in self.details[:5]]
        lines.append(f"    event trace ({len(self.trace)} events):")
        lines += [f"      {at:%Y-%m-%d %H:%M}Z  {'patient ' + str(p) + ': ' if p is not None else ''}{label}"
                  for at, label, p in self.trace[:80]]
        if len(self.trace) > 80:
            lines.append(f"      ... {len(self.trace) - 80} more")
        return lines


async def shrink(result: SimResult, *, max_runs: int = 8) -> Shrunk:
    target = result.failed()[0].name
    config = result.config
    best, best_result = config, result
    runs = 0

    async def fails(candidate: SimConfig) -> SimResult | None:
        nonlocal runs
        runs += 1
        outcome = await simulate(candidate)
        return outcome if any(o.name == target and not o.ok for o in outcome.invariants) else None

    patients = sorted(config.indices)
    chunks = 2
    while len(patients) > 1 and runs < max_runs:  # ddmin over the patient set
        size = max(1, len(patients) // chunks)
        parts = [patients[i:i + size] for i in range(0, len(patients), size)]
        reduced = False
        for part in parts:
            for keep in (part, [p for p in patients if p not in part]):
                if not keep or runs >= max_runs or len(keep) == len(patients):
                    continue
                found = await fails(best.with_(subset=frozenset(keep)))
                if found is not None:
                    best, best_result, patients = found.config, found, keep
                    chunks, reduced = max(chunks - 1, 2), True
                    break
            if reduced:
                break
        if not reduced:
            if size == 1:
                break
            chunks = min(len(patients), chunks * 2)
    span = best.max_days or 120
    while runs < max_runs and span > 7:  # then a shorter schedule
        candidate = best.with_(max_days=span // 2 + 3)
        found = await fails(candidate)
        if found is None:
            break
        best, best_result, span = found.config, found, candidate.max_days
    failed = next(o for o in best_result.invariants if o.name == target)
    return Shrunk(best, target, runs, best_result.trace, failed.details)
