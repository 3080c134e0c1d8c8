"""Benchmarks that ship with the package (`openveo bench`); the service and queue benchmarks live in
the repository's bench/ folder."""
