"""Reusable hypothesis strategies and state machines for gossamer's value types.

Shipped in the package, not only in the test suite, so that applications can
test their own state types with the same generators and laws gossamer uses on
itself.  These modules import hypothesis, which is not a runtime dependency:
install the ``dev`` extra (``pip install gossamer[dev]``) to use them.
"""
