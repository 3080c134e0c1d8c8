"""Prompt → frames. The only layer (with worker/ and bench/) that imports torch; this package file does
not, so that `openveo.engine.weights` stays importable by the torch-free parts of the CLI."""
