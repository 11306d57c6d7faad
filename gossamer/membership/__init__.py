"""Membership: who is in the cluster, and the overlay the cluster talks over.

Holds the member table (SWIM's merge precedence: incarnation, then status),
the HyParView partial-view overlay and the Plumtree broadcast trees built on
it.  Sans-IO like every core: see ``docs/architecture.md``.
"""
