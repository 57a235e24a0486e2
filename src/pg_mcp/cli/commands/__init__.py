"""One module per ``pg-mcp`` subcommand: ``run(args, settings) -> exit code``."""
