"""boto3 clients shared by a process (issue 15: a sensor tick on S3 spent 0.8 s of CPU making one).

Every new boto3 session parses botocore's JSON models again (the endpoints and partitions,
the service's model: ~0.3-0.8 s of CPU a client here); a landing sensor made one a tick and a
run one a step and storage. Here a process keeps its clients, one per service, settings and
AWS environment, and makes new ones from sessions that share one botocore loader, whose
parsed models `warm` can load before run workers are forked from a server (a forked child
keeps the models, never the parent's clients).

boto3 clients are thread-safe, sessions are not: a client is made under a lock, from a
session of its own. The AWS settings apply as with `boto3.client`: `AWS_*` variables are
part of a client's key (a changed endpoint, region or credentials makes a new client), and
a client is made afresh after MAX_AGE_S, so a credentials or config file changed on disk is
read again within that time (temporary credentials refresh themselves within a client).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
import time
from typing import Any

MAX_AGE_S = 900.0
MAX_CLIENTS = 32
_LOCK = threading.Lock()
_CLIENTS: dict[str, tuple[float, Any]] = {}
_LOADER: list[Any] = []  # the one botocore loader, made on first use


def shared_client(
    service: str,
    profile: str | None = None,
    config: dict[str, Any] | None = None,
    unsigned: bool = False,
    **client_args: Any,
) -> Any:
    """The process's boto3 client of `service` made with these arguments (`config`: the
    options of a botocore Config; `unsigned`: requests are not signed)."""
    key = _key(service, profile, config, unsigned, client_args)
    now = time.monotonic()
    with _LOCK:
        made = _CLIENTS.get(key)
        if made is not None and now - made[0] < MAX_AGE_S:
            return made[1]
        client = _new_client(service, profile, config, unsigned, client_args)
        _forget_old(now)
        _CLIENTS[key] = (now, client)
        return client


def warm(service: str = "s3") -> None:
    """Parse botocore's models of `service` into the shared loader (no credentials looked
    up, no connection made), so clients made later, here or in a forked child, skip it."""
    with _LOCK:
        session = _session(None)
        session.client(
            service, region_name="us-east-1", aws_access_key_id="-", aws_secret_access_key="-"
        )


def clear() -> None:
    """Forget every client (the next call makes new ones)."""
    with _LOCK:
        _CLIENTS.clear()


def _forget_old(now: float) -> None:
    """Drop clients past their age, and the oldest beyond MAX_CLIENTS (a process whose
    environment keeps changing, e.g. tests, would pile them up). Called under _LOCK."""
    for key in [k for k, (made, _) in _CLIENTS.items() if now - made >= MAX_AGE_S]:
        del _CLIENTS[key]
    while len(_CLIENTS) >= MAX_CLIENTS:
        del _CLIENTS[min(_CLIENTS, key=lambda k: _CLIENTS[k][0])]


def _forget_in_child() -> None:
    """A forked child (a run worker from the forkserver) makes clients of its own: a
    parent's client may hold pooled connections, which two processes must not share. The
    loader's parsed models are plain data and are kept."""
    global _LOCK
    _LOCK = threading.Lock()  # another thread of the parent may have held it at the fork
    _CLIENTS.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _key(service: str, profile: str | None, config: Any, unsigned: bool, args: Any) -> str:
    """A digest of everything the client depends on, the AWS_ variables included (a digest:
    no copy of a secret kept in the table)."""
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    text = json.dumps(
        [service, profile, config, unsigned, args, environment], sort_keys=True, default=repr
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _new_client(
    service: str, profile: str | None, config: Any, unsigned: bool, args: dict[str, Any]
) -> Any:
    from botocore.config import Config
    from botocore.handlers import disable_signing

    # a copy: Config rewrites its `retries` dict in place (max_attempts -> total_max_attempts)
    options = copy.deepcopy(config)
    client = _session(profile).client(
        service, config=Config(**options) if options else None, **args
    )
    if unsigned:
        client.meta.events.register(f"choose-signer.{service}.*", disable_signing)
    return client


def _session(profile: str | None) -> Any:
    """A new boto3 session (it reads the environment and credential chain now) on the
    shared loader. Called under _LOCK."""
    import boto3
    import botocore.loaders
    import botocore.session

    if not _LOADER:
        _LOADER.append(botocore.loaders.create_loader())
    core = botocore.session.Session(profile=profile)
    core.register_component("data_loader", _LOADER[0])
    session = boto3.session.Session(botocore_session=core)
    paths = _LOADER[0].search_paths  # boto3 appends its data folder a session: once is enough
    paths[:] = list(dict.fromkeys(paths))
    return session
