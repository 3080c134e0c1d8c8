"""The shared vocabulary: presets and their catalog, engine modes, the generation request, and jobs
with their typed results. Every layer imports it; it imports no torch, SQL or web framework."""
