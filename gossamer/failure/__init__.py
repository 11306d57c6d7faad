"""Failure detection: SWIM with the Lifeguard extensions over the whole member
table, and a phi-accrual detector on the heartbeats of directly linked peers.
Sans-IO like every core: see ``docs/architecture.md``.
"""
