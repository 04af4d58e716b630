"""Whole-trial simulation (issue 16): many patients over several cycles, driven through the real
Application, scheduler and outbox against the local Bot API sandbox with an accelerated clock,
under injected faults, and checked afterwards against named invariants.

Entry points: `adherence-bot simulate`, `python -m sim`, `make simulate`.
"""

from sim.scenario import SimConfig
from sim.engine import SimResult, simulate

__all__ = ["SimConfig", "SimResult", "simulate"]
