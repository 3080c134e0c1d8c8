"""Persistence: the SQL schema, connections, the job queue's SQL, result files. No torch here."""
