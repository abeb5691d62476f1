"""``python -m watcher`` is the ``watcher`` command."""

from watcher.cli import main

if __name__ == "__main__":
    main()
