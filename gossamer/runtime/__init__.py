"""The asyncio runtime, the second driver of :class:`~gossamer.core.NodeCore`.

``engine.py`` drives the core on real sockets (on a thread of its own by
default), ``node.py`` is the application's face (:class:`Node`),
``transport.py`` the sealed UDP and TCP sockets, ``keyring.py`` the keys,
``nodeconfig.py`` what a node is started with.  Import the public names from
``gossamer``; this package imports nothing by itself, so reading one module
of it does not load the others.
"""
