"""Whole-trial simulation (issue 16): many patients over several cycles, driven through the real
Application, scheduler and outbox against the local Bot API sandbox with an accelerated clock,
under injected faults, and checked afterwards against named invariants.

Entry points: `adherence-bot simulate`, `python -m sim`, `make simulate`.
"""

from sim.scenario import SimConfig

__all__ = ["SimConfig", "SimResult", "simulate"]


def __getattr__(name: str):
    # The engine imports the whole bot and the sandbox: only on use, so that the `adherence-bot`
    # command line (which builds the `simulate` arguments from sim.cli) starts without them.
    if name in ("SimResult", "simulate"):
        from sim import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
