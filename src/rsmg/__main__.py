"""``python -m rsmg`` is the same as the ``rsmg`` console script."""

from rsmg.cli.main import main

if __name__ == "__main__":
    main()
