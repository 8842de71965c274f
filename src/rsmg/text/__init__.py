"""rsmg.text."""
