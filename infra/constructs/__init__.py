"""Small named constructs the driftloop stacks are built from."""
