"""rsmg.cli."""
