"""The driftloop stacks, split by lifecycle: data, training, serving."""
