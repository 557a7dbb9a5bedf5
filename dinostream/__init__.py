"""dinostream: real-time video analytics on DINOv3 embeddings."""

__version__ = "0.1.0"
