"""Soft state: delta-state CRDTs, the registries built on them (process groups
and global names), replicated documents, and the replicator that ships deltas
and runs anti-entropy.  Sans-IO like every core: see ``docs/architecture.md``.
"""
