"""The web server of `storelink web`: gunicorn run in this process with `config/gunicorn.conf.py`.

It is gunicorn's own command (`gunicorn -c config/gunicorn.conf.py 'connector.app:create_app()'`, the Procfile's
`web`) without the command line: the same configuration file, GUNICORN_CMD_ARGS honoured as gunicorn honours it,
the same process titles (`gunicorn: master [connector.app:create_app()]`, `gunicorn: worker [...]`). Being a
`storelink` command, it can be forked from `storelink up`'s fork server, which imported this module, the app and
gunicorn once for every process it forks (see `connector.supervisor`)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from gunicorn.app.base import Application

import config

CONFIG_FILE = Path(config.__file__).parent / "gunicorn.conf.py"
APP = "connector.app:create_app()"  # what gunicorn's command line names, and its processes' titles show


class WebServer(Application):
    """gunicorn serving `connector.app.create_app()`, configured by CONFIG_FILE then GUNICORN_CMD_ARGS, and
    bound to `bind` if given (else to the configuration's bind)."""

    def __init__(self, bind: str | None = None) -> None:
        self.bind = bind
        super().__init__(prog="storelink web")

    def load_config(self) -> None:
        assert self.cfg is not None
        self.cfg.set("default_proc_name", APP)
        self.cfg.set("config", str(CONFIG_FILE))
        self.load_config_from_file(str(CONFIG_FILE))
        env_args = self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env())
        for name, value in vars(env_args).items():
            if value is not None and name != "args":
                self.cfg.set(name.lower(), value)
        if self.bind is not None:
            self.cfg.set("bind", [self.bind])

    def init(self, parser: object, opts: object, args: object) -> None:
        """Not called: the configuration comes from `load_config` alone."""

    def load(self) -> Flask:
        from connector.app import create_app

        return create_app()
