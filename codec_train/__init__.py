"""Training, export and int8 simulation of the semantic codec (the host's PyTorch side)."""
