"""File formats read from users: restricted unpickling and embedding encoding helpers."""
