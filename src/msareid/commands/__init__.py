"""Subcommand handlers; each takes the parsed arguments and returns an exit code."""
