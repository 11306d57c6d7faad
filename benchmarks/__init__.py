"""gossamer's benchmarks: each module runs with ``python -m benchmarks.NAME [--json]``."""
