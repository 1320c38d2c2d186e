"""Layer 8, cli: the `safeseek` command line (core/cli/main.py), one subcommand per workflow. It sits at the bottom:
it may import every other layer, and nothing in core imports it."""
