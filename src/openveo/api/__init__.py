"""Wire formats only: each protocol parses its requests into the shared core and renders answers back."""
