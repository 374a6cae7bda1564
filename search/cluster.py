"""Ray for a job's trials: the embedded single-machine Ray closed to the network, or a cluster joined by
address with its own token authentication; and the Optuna trials a dead attempt left running."""

from __future__ import annotations

import os
import secrets

import optuna


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray once: join the cluster at ``address`` (e.g. ``"ray://head:10001"`` or ``"auto"``), with the
    cluster's own authentication (``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` on every node, see
    docker-compose.yml); else start a single-machine Ray with ``num_cpus`` CPUs, no dashboard and no usage
    stats, closed to the network (``local_only_ray_env``). Does nothing if Ray is already initialised."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    os.environ.update(local_only_ray_env())
    _reload_ray_settings()
    # address="local": always a Ray of our own, never a cluster another process started on this machine
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def _reload_ray_settings() -> None:
    """Make this process see the environment just set: Ray read it when it was imported (the node IP rule and
    the auth mode); Ray's own processes inherit the environment."""
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    ray_constants.ENABLE_RAY_CLUSTER = False
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def local_only_ray_env() -> dict[str, str]:
    """The environment of an embedded Ray that only this machine can reach: every Ray process (GCS,
    raylet, workers, agents) binds 127.0.0.1 (Ray does so when it is told clusters are off:
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; ``_node_ip_address`` alone leaves the gRPC servers on every
    interface), and token authentication is on with a token of this process's own (inherited by Ray's
    processes; never written to a shared file)."""
    token = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def fail_stale_trials(optuna_storage: str, prefix: str) -> int:
    """Mark FAIL every RUNNING Optuna trial of the studies named ``prefix...``: called when a job is resumed,
    whose earlier attempt died with trials in flight (the job's one holder owns all its studies)."""
    storage = optuna.storages.RDBStorage(optuna_storage)
    failed = 0
    try:
        for study in storage.get_all_studies():
            if not study.study_name.startswith(prefix):
                continue
            running = storage.get_all_trials(
                study._study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
            )
            for trial in running:
                storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
                failed += 1
    finally:
        storage.engine.dispose()
    return failed
