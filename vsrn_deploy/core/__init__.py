"""The bottom layer: the export contract (names, shapes, precisions, parity bounds), the error
types and the caption tokenisation. Standard library and numpy only; every other layer may use it."""
