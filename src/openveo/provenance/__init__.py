"""Provenance: the invisible watermark and the signed Content Credentials that mark a video as openveo's."""
