"""An asynchronous vector env that runs several environments in each worker process.

Gymnasium's ``AsyncVectorEnv`` gives every environment a process of its own. On a small
machine (4 NavBench-GS envs on 2 cores) that oversubscribes the cores: four workers take
turns on two, every step wakes four processes, and the parent's writes to their pipes are
interrupted by the workers they wake. :class:`GroupedAsyncVectorEnv` runs ``num_envs``
environments in ``num_workers`` processes instead (typically one per core), each stepping
its group of environments one after the other. The semantics are those of
``gymnasium.vector.SyncVectorEnv`` with next-step autoreset, environment by environment:
the same seeds and actions give the same observations, rewards, terminations and infos.

Observations travel through shared memory (gymnasium's ``create_shared_memory``), one slot
per environment; rewards, flags and info dicts through the workers' pipes. ``call``,
``get_attr`` and ``set_attr`` reach every environment in order, as gymnasium's do. A worker
that raises sends its traceback and the parent raises :class:`VectorEnvWorkerError`, naming
the worker and the environments it held, after closing the others.
"""

from __future__ import annotations

import itertools
import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import (
    CloudpickleWrapper,
    batch_space,
    create_shared_memory,
    iterate,
    read_from_shared_memory,
    write_to_shared_memory,
)
from gymnasium.vector.vector_env import AutoresetMode, VectorEnv

from s2e_policy.errors import S2EError

CLOSE_TIMEOUT_S = 10.0
"""How long :meth:`GroupedAsyncVectorEnv.close` waits for a worker before terminating it."""


class VectorEnvWorkerError(S2EError):
    """An environment raised inside a :class:`GroupedAsyncVectorEnv` worker."""


def _groups(num_envs: int, num_workers: int) -> list[range]:
    """Environments ``0 .. num_envs - 1`` in ``num_workers`` contiguous, near-equal groups."""
    bounds = np.linspace(0, num_envs, num_workers + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _worker(pipe: Any, parent_pipe: Any, env_fns: list[Callable[[], gym.Env]],
            indices: list[int], observation_space: gym.Space, shared: Any) -> None:
    """A worker's loop: build its envs, then serve ``reset``, ``step`` and ``close``.

    Args:
        pipe: this worker's end of its pipe.
        parent_pipe: the parent's end (closed here: the worker never uses it).
        env_fns: constructors of the worker's environments.
        indices: their indices in the vector env (their shared-memory slots).
        observation_space: one environment's observation space.
        shared: the observations' shared memory, one slot per environment of the vector env.
    """
    parent_pipe.close()
    envs: list[gym.Env] = []
    try:
        envs = [fn() for fn in env_fns]
        autoreset = [False] * len(envs)
        pipe.send(("ready", None))
        while True:
            command, data = pipe.recv()
            if command == "reset":
                seeds, options = data
                infos = []
                for k, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
                    obs, info = env.reset(seed=seed, options=options)
                    write_to_shared_memory(observation_space, indices[k], obs, shared)
                    infos.append(info)
                autoreset = [False] * len(envs)
                pipe.send(("ok", infos))
            elif command == "step":
                results = []
                for k, (env, action) in enumerate(zip(envs, data, strict=True)):
                    if autoreset[k]:  # next-step autoreset, as SyncVectorEnv
                        obs, info = env.reset()
                        reward, terminated, truncated = 0.0, False, False
                    else:
                        obs, reward, terminated, truncated, info = env.step(action)
                    write_to_shared_memory(observation_space, indices[k], obs, shared)
                    autoreset[k] = bool(terminated or truncated)
                    results.append((reward, terminated, truncated, info))
                pipe.send(("ok", results))
            elif command == "call":
                name, args, kwargs = data
                answers = []
                for env in envs:
                    attribute = getattr(env, name)
                    answers.append(attribute(*args, **kwargs) if callable(attribute)
                                   else attribute)
                pipe.send(("ok", answers))
            elif command == "set_attr":
                name, values = data
                for env, value in zip(envs, values, strict=True):
                    setattr(env, name, value)
                pipe.send(("ok", None))
            elif command == "close":
                break
            else:
                raise ValueError(f"unknown command {command!r}")
    except (KeyboardInterrupt, EOFError):
        pass
    except Exception as exc:  # every failure goes back to the parent
        pipe.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        for env in envs:
            env.close()
        pipe.close()


class GroupedAsyncVectorEnv(VectorEnv):
    """``len(env_fns)`` environments in ``num_workers`` subprocesses, stepped group by group.

    Args:
        env_fns: one constructor per environment (cloudpickled into the workers, so lambdas
            work too); the first is also called in this process to read the spaces, and
            that env is closed at once.
        num_workers: worker processes (``1 <= num_workers <= len(env_fns)``); environment
            ``i`` lives in the worker of its contiguous group (:func:`_groups`).
        context: multiprocessing start method.

    Raises:
        S2EError: on an empty ``env_fns`` or a worker count out of range.
        VectorEnvWorkerError: when a worker's environment fails to build.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], num_workers: int,
                 context: str = "spawn") -> None:
        self.closed = True  # until the workers exist: nothing for close() to stop
        if not env_fns:
            raise S2EError("GroupedAsyncVectorEnv needs at least one environment")
        if not 1 <= num_workers <= len(env_fns):
            raise S2EError(f"GroupedAsyncVectorEnv: num_workers must be in [1, "
                           f"{len(env_fns)}] (the number of environments), got {num_workers}")
        probe = env_fns[0]()
        self.metadata = dict(probe.metadata)
        self.metadata["autoreset_mode"] = AutoresetMode.NEXT_STEP
        self.render_mode = probe.render_mode
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        probe.close()
        self.num_envs = len(env_fns)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.groups = _groups(self.num_envs, num_workers)
        ctx = multiprocessing.get_context(context)
        self._shared = create_shared_memory(self.single_observation_space, self.num_envs,
                                            ctx=ctx)
        self._observations = read_from_shared_memory(self.single_observation_space,
                                                     self._shared, self.num_envs)
        self._pipes: list[Any] = []
        self._processes: list[Any] = []
        self.closed = False
        for w, group in enumerate(self.groups):
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=_worker, name=f"GroupedAsyncVectorEnv-{w}", daemon=True,
                args=(child, parent, [CloudpickleWrapper(env_fns[i]) for i in group], list(group),
                      self.single_observation_space, self._shared))
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        self._receive("while building its environments")

    # ------------------------------------------------------------------ protocol
    def _receive(self, stage: str) -> list[Any]:
        """Each worker's answer, in worker order; raises (after closing) if one failed."""
        answers, failure = [], None
        for w, pipe in enumerate(self._pipes):
            try:
                status, payload = pipe.recv()
            except EOFError:
                status, payload = "error", "the worker process died (no traceback)"
            if status == "error" and failure is None:
                group = self.groups[w]
                failure = (f"GroupedAsyncVectorEnv worker {w} (environments "
                           f"{group.start}-{group.stop - 1}) failed {stage}:\n{payload}")
            answers.append(payload)
        if failure is not None:
            self.close(terminate=True)
            raise VectorEnvWorkerError(failure)
        return answers

    def _send(self, messages: list[tuple[str, Any]]) -> None:
        if self.closed:
            raise S2EError("GroupedAsyncVectorEnv is closed")
        for pipe, message in zip(self._pipes, messages, strict=True):
            pipe.send(message)

    def _batch_infos(self, per_env: list[dict[str, Any]]) -> dict[str, Any]:
        infos: dict[str, Any] = {}
        for i, info in enumerate(per_env):
            infos = self._add_info(infos, info, i)
        return infos

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every environment (``seed`` int: environment ``i`` gets ``seed + i``)."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise S2EError(f"reset: {len(seeds)} seeds for {self.num_envs} environments")
        self._send([("reset", ([seeds[i] for i in group], options)) for group in self.groups])
        per_env = [info for answer in self._receive("during reset") for info in answer]
        return deepcopy(self._observations), self._batch_infos(per_env)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        """Step every environment (one that ended on the last step is reset instead)."""
        single = list(iterate(self.action_space, actions))
        if len(single) != self.num_envs:
            raise S2EError(f"step: {len(single)} actions for {self.num_envs} environments")
        self._send([("step", [single[i] for i in group]) for group in self.groups])
        results = [r for answer in self._receive("during step") for r in answer]
        rewards = np.array([r[0] for r in results], dtype=np.float64)
        terminations = np.array([r[1] for r in results], dtype=np.bool_)
        truncations = np.array([r[2] for r in results], dtype=np.bool_)
        infos = self._batch_infos([r[3] for r in results])
        return deepcopy(self._observations), rewards, terminations, truncations, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call method ``name`` of every environment (or read it, if not callable); in order."""
        self._send([("call", (name, args, kwargs))] * len(self.groups))
        return tuple(r for answer in self._receive(f"calling {name!r}") for r in answer)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Attribute ``name`` of every environment, in order."""
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` of every environment.

        ``values``: one value each (a list or tuple of ``num_envs``), or one value for all.
        """
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise S2EError(f"set_attr({name!r}): {len(values)} values for {self.num_envs} "
                           "environments")
        self._send([("set_attr", (name, [values[i] for i in group])) for group in self.groups])
        self._receive(f"setting {name!r}")

    def render(self) -> tuple[Any, ...] | None:
        """Every environment's ``render()`` (None when the envs have no render mode)."""
        return None if self.render_mode is None else self.call("render")

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Stop the workers: ask them to close their envs, then join (or terminate) them."""
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            if not terminate and process.is_alive():
                try:
                    pipe.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
        for process in self._processes:
            if terminate:
                process.terminate()
            process.join(CLOSE_TIMEOUT_S if timeout is None else timeout)
            if process.is_alive():
                process.terminate()
                process.join()
        for pipe in self._pipes:
            pipe.close()
