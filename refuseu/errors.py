"""Error hierarchy. Every error a user can see derives from :class:`RefuseuError`.

Exit codes follow the command-line contract: 2 for a usage or input error (fix the
input and run again), 1 for a failed build (the input was fine, the work failed).
"""

from __future__ import annotations


class RefuseuError(Exception):
    """Base class of every refuseu error; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n  fix: {hint}")


class InputError(RefuseuError):
    """Bad input: a file, a row, a recipe or a flag that cannot be used (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None):
        where = []
        if file is not None:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        self.file, self.line, self.field = file, line, field
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)


class RecipeError(InputError):
    """An invalid recipe: unknown key, wrong type, value out of range (exit 2)."""


class BuildError(RefuseuError):
    """The build could not be completed (exit 1)."""


class ModelUnavailableError(BuildError):
    """A model a stage needs is not available locally (exit 1, before any work)."""


class ReleaseExistsError(BuildError):
    """A release version already exists with other content (exit 1)."""


class InvariantError(BuildError):
    """A pipeline invariant was broken (a bug, not bad input)."""


class ReleaseDamagedError(BuildError):
    """A release folder does not match its manifest (exit 1)."""


class BuildLockedError(BuildError):
    """Another build holds the build folder (exit 1)."""
