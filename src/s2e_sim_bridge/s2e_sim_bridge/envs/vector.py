"""An asynchronous vector env that runs several environments in each worker process.

Gymnasium's ``AsyncVectorEnv`` gives every environment a process of its own. On a small
machine (4 NavBench-GS envs on 2 cores) that oversubscribes the cores: four workers take
turns on two, every step wakes four processes, and the parent's writes to their pipes are
interrupted by the workers they wake. :class:`GroupedAsyncVectorEnv` runs ``num_envs``
environments in ``num_workers`` groups instead (typically one per core), each stepping its
environments one after the other; with ``parent_group`` the first group runs in this
process while the worker processes step theirs, so a 2-core machine has one worker and no
process waits idle for the others. The semantics are those of
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
import numba
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


class _Group:
    """Environments stepped one after the other, each with next-step autoreset.

    Args:
        envs: the group's environments.
        indices: their indices in the vector env (their shared-memory slots).
        observation_space: one environment's observation space.
        shared: the observations' shared memory, one slot per environment of the vector env.
    """

    def __init__(self, envs: list[gym.Env], indices: list[int], observation_space: gym.Space,
                 shared: Any) -> None:
        self.envs, self.indices = envs, indices
        self.observation_space, self.shared = observation_space, shared
        self.autoreset = [False] * len(envs)

    def _write(self, k: int, obs: Any) -> None:
        write_to_shared_memory(self.observation_space, self.indices[k], obs, self.shared)

    def handle(self, command: str, data: Any) -> Any:
        """Run ``command`` (``reset``, ``step``, ``call``, ``set_attr``) on every env.

        Returns the per-env answers (None for ``set_attr``).
        """
        envs = self.envs
        if command == "reset":
            seeds, options = data
            infos = []
            for k, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
                obs, info = env.reset(seed=seed, options=options)
                self._write(k, obs)
                infos.append(info)
            self.autoreset = [False] * len(envs)
            return infos
        if command == "step":
            results = []
            for k, (env, action) in enumerate(zip(envs, data, strict=True)):
                if self.autoreset[k]:  # next-step autoreset, as SyncVectorEnv
                    obs, info = env.reset()
                    reward, terminated, truncated = 0.0, False, False
                else:
                    obs, reward, terminated, truncated, info = env.step(action)
                self._write(k, obs)
                self.autoreset[k] = bool(terminated or truncated)
                results.append((reward, terminated, truncated, info))
            return results
        if command == "call":
            name, args, kwargs = data
            answers = []
            for env in envs:
                attribute = getattr(env, name)
                answers.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
            return answers
        if command == "set_attr":
            name, values = data
            for env, value in zip(envs, values, strict=True):
                setattr(env, name, value)
            return None
        raise ValueError(f"unknown command {command!r}")

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(pipe: Any, parent_pipe: Any, env_fns: list[Callable[[], gym.Env]],
            indices: list[int], observation_space: gym.Space, shared: Any) -> None:
    """A worker's loop: build its group of envs, then serve commands until ``close``.

    Args:
        pipe: this worker's end of its pipe.
        parent_pipe: the parent's end (closed here: the worker never uses it).
        env_fns: constructors of the worker's environments.
        indices: their indices in the vector env (their shared-memory slots).
        observation_space: one environment's observation space.
        shared: the observations' shared memory, one slot per environment of the vector env.
    """
    parent_pipe.close()
    group: _Group | None = None
    try:
        group = _Group([fn() for fn in env_fns], indices, observation_space, shared)
        pipe.send(("ready", None))
        while True:
            command, data = pipe.recv()
            if command == "close":
                break
            pipe.send(("ok", group.handle(command, data)))
    except (KeyboardInterrupt, EOFError):
        pass
    except Exception as exc:  # every failure goes back to the parent
        pipe.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        if group is not None:
            group.close()
        pipe.close()


class GroupedAsyncVectorEnv(VectorEnv):
    """``len(env_fns)`` environments in ``num_workers`` groups, each stepped env after env.

    Args:
        env_fns: one constructor per environment (cloudpickled into the workers, so lambdas
            work too). The first is also called in this process to read the spaces; that
            env is then the parent group's first env, or closed without one.
        num_workers: groups (``1 <= num_workers <= len(env_fns)``); environment ``i``
            lives in the group of its contiguous block (:func:`_groups`).
        context: multiprocessing start method.
        parent_group: the first group runs in this process, stepped while the worker
            processes step theirs (``num_workers - 1`` subprocesses).
        parent_threads: numba threads this process uses while stepping its group (restored
            after; None keeps its count). Its cores are shared with the workers then.

    Raises:
        S2EError: on an empty ``env_fns`` or a worker count out of range.
        VectorEnvWorkerError: when an environment fails to build.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], num_workers: int,
                 context: str = "spawn", parent_group: bool = False,
                 parent_threads: int | None = None) -> None:
        self.closed = True  # until the workers exist: nothing for close() to stop
        self._local: _Group | None = None
        self._pipes: list[Any] = []
        self._processes: list[Any] = []
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
        self.num_envs = len(env_fns)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.groups = _groups(self.num_envs, num_workers)
        self.parent_threads = parent_threads
        ctx = multiprocessing.get_context(context)
        self._shared = create_shared_memory(self.single_observation_space, self.num_envs,
                                            ctx=ctx)
        self._observations = read_from_shared_memory(self.single_observation_space,
                                                     self._shared, self.num_envs)
        remote = self.groups[1:] if parent_group else self.groups
        self._first_remote = len(self.groups) - len(remote)
        self.closed = False
        for w, group in enumerate(remote, start=self._first_remote):
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=_worker, name=f"GroupedAsyncVectorEnv-{w}", daemon=True,
                args=(child, parent, [CloudpickleWrapper(env_fns[i]) for i in group],
                      list(group), self.single_observation_space, self._shared))
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        if parent_group:
            envs = [probe]
            try:
                envs += [env_fns[i]() for i in self.groups[0][1:]]
            except Exception as exc:
                for env in envs:
                    env.close()
                raise self._local_failure("while building its environments", exc) from exc
            self._local = _Group(envs, list(self.groups[0]), self.single_observation_space,
                                 self._shared)
        else:
            probe.close()
        self._receive("while building its environments")

    # ------------------------------------------------------------------ protocol
    def _where(self, g: int, stage: str, detail: str) -> str:
        group = self.groups[g]
        place = "this process" if g < self._first_remote else f"worker {g}"
        return (f"GroupedAsyncVectorEnv group {g} (environments {group.start}-"
                f"{group.stop - 1}, in {place}) failed {stage}:\n{detail}")

    def _receive(self, stage: str) -> list[Any]:
        """Each worker's answer, in group order; raises (after closing) if one failed."""
        answers, failure = [], None
        for w, pipe in enumerate(self._pipes, start=self._first_remote):
            try:
                status, payload = pipe.recv()
            except EOFError:
                status, payload = "error", "the worker process died (no traceback)"
            if status == "error" and failure is None:
                failure = self._where(w, stage, payload)
            answers.append(payload)
        if failure is not None:
            self.close(terminate=True)
            raise VectorEnvWorkerError(failure)
        return answers

    def _local_failure(self, stage: str, exc: Exception) -> VectorEnvWorkerError:
        """The error to raise when this process's group failed.

        First reads (and drops) the answers the workers owe, then closes the vector env.
        """
        for pipe in self._pipes:
            try:
                pipe.recv()
            except (EOFError, OSError):
                pass
        self.close(terminate=True)
        return VectorEnvWorkerError(self._where(0, stage, f"{type(exc).__name__}: {exc}"))

    def _send(self, messages: list[tuple[str, Any]]) -> None:
        if self.closed:
            raise S2EError("GroupedAsyncVectorEnv is closed")
        for pipe, message in zip(self._pipes, messages[self._first_remote:], strict=True):
            pipe.send(message)

    def _run(self, messages: list[tuple[str, Any]], stage: str) -> list[Any]:
        """Send each group its command and run this process's group meanwhile.

        Returns every group's answer, in group order.
        """
        self._send(messages)
        answers = []
        if self._local is not None:
            threads = numba.get_num_threads()
            try:
                if self.parent_threads is not None:
                    numba.set_num_threads(min(self.parent_threads, threads))
                answers.append(self._local.handle(*messages[0]))
            except Exception as exc:
                raise self._local_failure(stage, exc) from exc
            finally:
                numba.set_num_threads(threads)
        return answers + self._receive(stage)

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
        messages = [("reset", ([seeds[i] for i in group], options)) for group in self.groups]
        per_env = [info for answer in self._run(messages, "during reset") for info in answer]
        return deepcopy(self._observations), self._batch_infos(per_env)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        """Step every environment (one that ended on the last step is reset instead)."""
        single = list(iterate(self.action_space, actions))
        if len(single) != self.num_envs:
            raise S2EError(f"step: {len(single)} actions for {self.num_envs} environments")
        messages = [("step", [single[i] for i in group]) for group in self.groups]
        results = [r for answer in self._run(messages, "during step") for r in answer]
        rewards = np.array([r[0] for r in results], dtype=np.float64)
        terminations = np.array([r[1] for r in results], dtype=np.bool_)
        truncations = np.array([r[2] for r in results], dtype=np.bool_)
        infos = self._batch_infos([r[3] for r in results])
        return deepcopy(self._observations), rewards, terminations, truncations, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call method ``name`` of every environment (or read it, if not callable); in order."""
        messages = [("call", (name, args, kwargs))] * len(self.groups)
        return tuple(r for answer in self._run(messages, f"calling {name!r}") for r in answer)

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
        self._run([("set_attr", (name, [values[i] for i in group])) for group in self.groups],
                  f"setting {name!r}")

    def render(self) -> tuple[Any, ...] | None:
        """Every environment's ``render()`` (None when the envs have no render mode)."""
        return None if self.render_mode is None else self.call("render")

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Close this process's envs and stop the workers.

        The workers are asked to close their envs, then joined (or terminated).
        """
        if self._local is not None:
            self._local.close()
            self._local = None
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
