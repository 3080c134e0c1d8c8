"""The refusal every layer shares: a request field with a value the service cannot take."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """A field with a value the service cannot take; `problem` reads after the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(self.message())

    def message(self, wire_name: str | None = None) -> str:
        return f"{wire_name or self.field} {self.problem}"
