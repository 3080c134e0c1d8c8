"""Persistence: the SQL schema and its migrations, connections, result files, wake-ups. No torch here."""
