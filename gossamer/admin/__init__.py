"""Operating a cluster from inside it: changes an operator makes on every node at once
(``keys.py``: key rotation).  Sans-IO like every core: see ``docs/architecture.md``."""
