"""Prompt → frames → MP4. The only layer (with worker/) that imports torch; this package file does not,
so that `openveo.engine.catalog` stays importable by the torch-free API process."""
