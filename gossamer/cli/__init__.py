"""The ``gossamer`` command: ``main`` parses the command line (``main.py``);
``agent.py`` runs one node as a process, ``client.py`` reads a running
node's debug endpoint, ``demo.py`` is ``gossamer demo``."""

from gossamer.cli.main import main

__all__ = ["main"]
