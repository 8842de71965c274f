"""Output helpers shared by every writer in rsmg: files are written atomically (temp file + rename)."""

from rsmg.data.readers import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
