"""Stack settings (schema, loading), offline evaluation and the `python -m stacks` CLI."""
