"""The package version, in a module of its own so that no module inside the
package needs to import the package face (``gossamer/__init__``) to read it."""

__version__ = "0.1.0"
