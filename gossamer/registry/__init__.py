"""Process groups and global names as a part of the node (the ``registry`` part).

The models are in ``gossamer/crdt`` (``groups.py``, ``names.py``,
``owners.py``); ``part.py`` replicates them over the broadcast tree and by
anti-entropy, and follows SWIM's member events.
"""
