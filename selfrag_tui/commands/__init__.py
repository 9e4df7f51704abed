"""One module per `selfrag-chat` subcommand, each with `run(args, settings) -> int`; imported on demand."""
