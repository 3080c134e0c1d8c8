"""Protocol-free core: requests, jobs, billing. Never imports torch or diffusers."""
