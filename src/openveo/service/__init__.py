"""The service: submitting, the job queue, keys and credits, webhooks, the content policy, provenance as
the deployment runs it. Protocol-free and torch-free; the API and the workers both build on it."""
