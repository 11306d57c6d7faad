"""Membership: who is in the cluster.

Holds the member table (SWIM's merge precedence: epoch, incarnation, then
status) that the SWIM part owns.  The overlay the cluster talks over
(HyParView's views, Plumtree's trees) is a separate concern and goes in
``gossamer/overlay/``.  Sans-IO like every core: see ``docs/architecture.md``.
"""
