"""openveo: self-hosted, open-model video generation behind the Veo 2 APIs."""

__version__ = "0.1.0"
