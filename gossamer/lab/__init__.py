"""Experiments and teaching material that run in the simulator.

``news.py`` is a small teaching protocol (push-pull anti-entropy of version
vectors), ``demo.py`` the narrated ``gossamer sim demo`` built on it, and
``swim_experiment.py`` the experiment behind ``gossamer sim swim`` and the
SWIM benchmarks.  Nothing in the node depends on this package.
"""
