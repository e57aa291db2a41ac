"""Training machinery: learning-rate schedule, checkpoints, distributed set-up, the epoch loop."""
