"""The typer command line. Each command lives in its own module, defined at module level, with a
`register(app)` that only adds it; shared options (flags, types, help, choices from the backend
table and the contract) are declared once in `options.py`. The commands only parse options and call
the library; progress goes through `logging` (set up by the root callback in `app.py`)."""
