"""The typer command line. Each command lives in its own module with a `register(app)` function;
the commands only parse options and call the library."""
