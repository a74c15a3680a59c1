"""sizebench: how much model do you actually need? A parameter-size comparison harness."""

__version__ = "0.1.0"
