"""The algorithm: configuration, angular velocity, saturation test, drops, and the learning-rate
schedule. Imports only PyTorch (and ``torch.distributed`` for several processes)."""
