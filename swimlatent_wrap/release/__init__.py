"""Release steps: LoRA ratio sweep, verified merge."""
