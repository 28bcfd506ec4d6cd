"""`python -m connector.cli`: the `storelink` command, as the supervisor starts its workers and scheduler.

The signal handling (SIGTERM and the other ending signals run the command's cleanup, then exit with 128 + the
signal's number) is installed by `main` itself, so it is the same here as for the console script."""

from connector.cli import main

if __name__ == "__main__":
    main()
