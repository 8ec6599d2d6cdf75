"""One module per `fleetsim` subcommand: HELP, add_arguments(parser), run(args) -> int."""
