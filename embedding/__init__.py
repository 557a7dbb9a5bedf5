"""The model stage: frames in, `FrameEmbedding` records out (loading, micro-batching, DINOv3
forward, patch PCA)."""
