"""The one argument convention of every `weir` command.

- A release file is always a positional FILE (`weir validate FILE`, `weir apply FILE`, ...).
- `weir edge [FILE]` and `weir up [FILE]` may leave it out: they then re-serve the last applied
  revision of the runtime directory (`current`), never a file on disk.
- Every command that touches a runtime directory takes `--runtime-dir DIR` (default:
  $WEIR_RUNTIME_DIR, else ./.weir).
- Exit codes (EXIT_CODES): 0 done; 2 the input is wrong (the command line, a release file that
  is not valid, or a model, version or split the edge refuses); 1 the operation failed (the
  message says why, and what still serves).
"""

from __future__ import annotations

import argparse

EXIT_CODES = (
    "Exit codes: 0 done; 2 the input is wrong (the command line, an invalid release file, or a "
    "model, version or split the edge refuses); "
    "1 the operation failed (the message says why and what still serves)."
)
CONVENTION = (
    "A release file is always a positional FILE. `weir edge [FILE]` and `weir up [FILE]` may "
    "leave it out: they then serve the last applied revision. Every command that touches a "
    "runtime directory takes --runtime-dir DIR (default: $WEIR_RUNTIME_DIR, else .weir). "
    + EXIT_CODES
)


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A `weir PROG` command's parser, with the --runtime-dir every command takes."""
    parser = argparse.ArgumentParser(prog=f"weir {prog}", description=description)
    parser.add_argument("--runtime-dir", help="default: $WEIR_RUNTIME_DIR or .weir")
    return parser


def add_release_file(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """The release FILE, positional; optional only for the commands that can serve `current`."""
    if optional:
        parser.add_argument(
            "file", nargs="?", help="release YAML (default: the last applied revision)"
        )
    else:
        parser.add_argument("file", help="release YAML")
