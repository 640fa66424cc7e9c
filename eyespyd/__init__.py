"""eyespyd: sorts blinks out of a photo session as the frames land."""

__version__ = "0.1.0"
