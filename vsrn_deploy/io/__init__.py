"""The bottom layer for files: atomic writes, folder swaps and hashing (`files`), restricted
unpickling (`safe_pickle`). Standard library and numpy only; nothing here imports the rest of
vsrn_deploy, so every layer may use it."""
