"""Running the user's job: the target (script or module), the supervising parent and the child
it starts, torchrun launches, how a run ended (outcome), and the live view."""
