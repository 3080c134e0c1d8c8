"""The GPU side: a process that holds a model resident and runs queued jobs one at a time."""
