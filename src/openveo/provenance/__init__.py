"""Provenance, as a library: the invisible watermark, the identity it carries, and the signed Content
Credentials. It reads no jobs and no stores; service/provenance.py feeds it the deployment's."""
