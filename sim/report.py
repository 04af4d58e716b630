"""The summary an operator reads after a run (plain English text)."""

from __future__ import annotations

from datetime import timedelta

from sim.engine import SimResult


def _duration(delta: timedelta) -> str:
    days, seconds = delta.days, delta.seconds
    return f"{days} d {seconds // 3600} h" if days else f"{seconds // 3600} h {seconds % 3600 // 60} min"


def summary(result: SimResult) -> str:
    c = result.config
    counts = result.counts
    lines = [
        f"Whole-trial simulation — seed {c.seed}, {result.database}",
        f"  reproduce: {c.reproduce_command()}",
        "",
        f"  {'patients planned / enrolled':<44}{len(c.indices)} / {counts.get('patients in the database', 0)}",
        f"  {'cycles per patient':<44}{c.cycles}",
        f"  {'courses registered':<44}{counts.get('courses', 0)}",
        f"  {'dose days':<44}{counts.get('dose days', 0)}",
    ]
    for key in sorted(k for k in counts if k.startswith("dose days ")):
        lines.append(f"    {key.removeprefix('dose days '):<42}{counts[key]}")
    lines += [
        f"  {'messages to patients / to staff':<44}{result.messages.get('to patients', 0)} / "
        f"{result.messages.get('to staff', 0)}",
        f"    {'dose prompts / next-morning questions':<42}{result.messages.get('dose prompts', 0)} / "
        f"{result.messages.get('next-morning questions', 0)}",
        f"  {'updates sent by people (approx.)':<44}{counts.get('button presses', 0) + counts.get('updates sent', 0)}",
    ]
    for key in sorted(k for k in counts if k.startswith(("symptom reports", "alerts", "coordinator actions",
                                                           "free texts", "voice", "double taps", "outbox rows re-sent",
                                                           "commits failed", "simulator actions", "restarts"))):
        lines.append(f"  {key:<44}{counts[key]}")
    lines.append(f"  {'faults injected (that hit) by kind':<44}" +
                 (", ".join(f"{k} {v}" for k, v in sorted(result.faults.items())) or "none"))
    lines += [
        f"  {'errors logged by the bot':<44}{result.errors_logged}",
        *(f"    {count:>4} × {kind}" for kind, count in result.error_kinds.most_common()),
        f"  {'simulated time':<44}{_duration(result.simulated)}",
        f"  {'real time':<44}{result.real_seconds:.1f} s ({counts.get('clock steps', 0)} clock steps)",
        f"  {'speed-up (simulated / real)':<44}{result.speedup:,.0f}×",
        "",
        "  invariants:",
    ]
    for outcome in result.invariants:
        extra = f" — {outcome.note}" if outcome.note else ""
        lines.append(f"    {outcome.status:<8}{outcome.name} ({outcome.checked} checked){extra}")
        for detail in outcome.details:
            lines.append(f"             {detail}")
    for note in result.notes:
        lines.append(f"  note: {note}")
    if not result.ok:
        lines += ["", f"  FAILED with seed {c.seed}: {', '.join(o.name for o in result.failed())}"]
        if result.shrunk is not None:
            lines += result.shrunk.describe()
    return "\n".join(lines)
