"""The rules that turn a RunData into findings, one module per concept (rules/gpu/ for the GPU),
and the engine that runs them (registry.py): every Rule subclass with an id defined here is a
built-in rule, and precedence between rules (`defers_to`) is the engine's."""
