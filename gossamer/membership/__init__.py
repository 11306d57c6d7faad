"""Membership: who is in the cluster, and the overlay the cluster talks over.

Holds the member table (SWIM's merge precedence: epoch, incarnation, then
status) that the SWIM part owns, HyParView's partial views (the ``overlay``
part) and Plumtree's broadcast trees over them (the ``broadcast`` part).
Sans-IO like every core: see ``docs/architecture.md``.
"""
