"""The application's exception tree.

    VigilError                 a message for a person, with a CLI exit code
    ├── ConfigError            settings file or environment is invalid (exit 2)
    ├── SourceError            a source cannot be read at all (exit 3)
    ├── InputError             part of the input was unusable: a refused file, or a table whose
    │                          every row was quarantined; the rest was used (exit 4)
    └── RuleSetError           the rule set does not load (exit 1); ``errors`` lists every problem
"""

from __future__ import annotations


class VigilError(Exception):
    exit_code = 1


class ConfigError(VigilError):
    exit_code = 2


class SourceError(VigilError):
    exit_code = 3


class InputError(VigilError):
    exit_code = 4


class RuleSetError(VigilError):
    exit_code = 1

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
