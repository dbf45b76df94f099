"""The `engine` command: one module per subcommand, thin over the library."""
