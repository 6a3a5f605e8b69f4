"""The work queue in Azurite: settings for a fresh queue and batches container, and the host's queue
listener (devtools.queue_host) invoking the registered `post_work` function."""

from __future__ import annotations

import itertools

from devtools.queue_host import QueueHost

from .host import FUNCTIONS

_names = itertools.count()


def queue_settings(**extra: str) -> dict[str, str]:
    n = next(_names)
    return {"PAYMENTS_WORK_QUEUE": f"work-{n}", "PAYMENTS_BATCHES_CONTAINER": f"batches-{n}", **extra}


def queue_host(env, **options) -> QueueHost:
    """The listener for the relay's work queue, calling the function as the Python worker would."""
    return QueueHost(
        env.azurite.connection_string,
        env.settings["PAYMENTS_WORK_QUEUE"],
        FUNCTIONS["post_work"].get_user_function(),
        **options,
    )


def priority_host(env, **options) -> QueueHost:
    """The listener for the priority queue, calling the registered `post_priority` function."""
    return QueueHost(
        env.azurite.connection_string,
        env.settings["PAYMENTS_PRIORITY_QUEUE"],
        FUNCTIONS["post_priority"].get_user_function(),
        **options,
    )
