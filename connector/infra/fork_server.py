"""Imported first by the fork server of `storelink up` (see `connector.supervisor`), and by nothing else: the
server ignores the signals that end `up`, so a signal to `up`'s whole process group (a terminal's Ctrl-C,
`storelink demo` stopping it) leaves the server alive while `up` stops the processes it forked and collects
their exit. The server ends when `up` does (its pipe from `up` closes); each forked process sets these signals
back to their defaults before it runs its command."""

import signal

ENDING_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)

for _sig in ENDING_SIGNALS:
    signal.signal(_sig, signal.SIG_IGN)
