"""Job names to handlers, and the checks that keep bad messages out of the queue.

Handlers are registered by an explicit name, never an import path: the name
is the contract between whoever enqueues and whoever runs the job, and it
survives a refactor. Handler modules should import heavy libraries inside the
handler body, so the web tier can import them to validate payloads cheaply.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import schedule

from app.config import ConfigError
from app.jobs import flow, options, payloads
from app.jobs.context import JobContext
from app.jobs.errors import InvalidPayload, UnknownJob
from app.jobs.redact import redact

F = TypeVar("F", bound=Callable[..., Any])

#: The application's own job modules, always loaded by every process.
APP_JOB_MODULES = ("app.jobs.maintenance", "app.accounts.jobs", "app.reports.jobs")

_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class JobSpec:
    """A registered handler and the defaults every enqueue of it starts from."""

    name: str
    func: Callable[..., Any]
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 10
    #: Seconds a run may take before it is interrupted and retried; None: no limit.
    timeout: float | None = None
    #: Flow control defaults (`app/jobs/flow.py`): a key or a template of the
    #: payload ("user:{user_id}"), the concurrency limit, what a failure does.
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    ordering_key: str | None = None
    on_failure: str | None = None

    @cached_property
    def keyless(self) -> bool:
        """Whether the handler sets no flow key: its jobs have no flow unless enqueue gives one."""
        return self.concurrency_key is None and self.ordering_key is None

    @cached_property
    def context_param(self) -> str | None:
        """The parameter that asked for a `JobContext`, if any."""
        for param in inspect.signature(self.func).parameters.values():
            if param.annotation in (JobContext, "JobContext"):
                return param.name
        return None

    @cached_property
    def payload_signature(self) -> inspect.Signature:
        """The handler's signature without the context parameter: what a payload must fit."""
        return _payload_signature(self.func, self.context_param)

    def check_payload(self, payload: object) -> dict[str, Any]:
        """Return `payload` if it is a JSON object that fits the handler, else raise.

        For payloads read back from the jobs table: they are JSON already, so
        unlike `encode_payload` this does not serialize them again.
        """
        return self._validated(payload, None)[0]

    def encode_payload(
        self, payload: object, *, max_depth: int = 100, max_bytes: int = 1 << 20
    ) -> str:
        """Check `payload` like `check_payload` and return it as JSON text (see `payloads`)."""
        return self._validated(payload, (max_depth, max_bytes))[1] or ""

    def _validated(
        self, payload: object, limits: tuple[int, int] | None
    ) -> tuple[dict[str, Any], str | None]:
        """Raise `InvalidPayload` (never quoting a secret value) unless `payload` fits."""
        try:
            if not isinstance(payload, dict):
                raise InvalidPayload(
                    f"payload for job {self.name!r} must be a JSON object, "
                    f"got {type(payload).__name__}"
                )
            encoded = None
            if limits is not None:
                max_depth, max_bytes = limits
                encoded = payloads.encode(
                    payload, job=self.name, max_depth=max_depth, max_bytes=max_bytes
                )
            self._fit(payload)
            return payload, encoded
        except InvalidPayload as exc:
            raise InvalidPayload(redact(str(exc), payload)) from None

    @cached_property
    def _shape(self) -> _Shape | None:
        """The signature as sets and types, for a fit checked without `inspect` (None:
        a signature too unusual for it, checked the slow way every time)."""
        allowed, required, typed = set(), set(), []
        for name, param in self.payload_signature.parameters.items():
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                return None
            allowed.add(name)
            if param.default is param.empty:
                required.add(name)
            simple = _simple_type(param)
            if simple is not None:
                typed.append((name, param, simple[1]))
        return _Shape(frozenset(allowed), frozenset(required), tuple(typed))

    def _fit(self, payload: dict[str, Any]) -> None:
        """Raise unless the payload's keys and simple types fit the handler's signature."""
        if self.context_param is not None and self.context_param in payload:
            raise InvalidPayload(
                f"payload for job {self.name!r} may not set {self.context_param!r}: "
                "the worker passes the job context there"
            )
        shape = self._shape
        if shape is not None and shape.required <= payload.keys() <= shape.allowed:
            for name, param, expected in shape.typed:
                # An exact type match passes at once; the rest are checked in full.
                if name in payload and type(payload[name]) not in expected:
                    _check_simple_type(self.name, param, payload[name])
            return
        signature = self.payload_signature
        try:
            bound = signature.bind(**payload)
        except TypeError as exc:
            raise InvalidPayload(
                f"payload for job {self.name!r} does not fit {self.name}{signature}: {exc}"
            ) from None
        for key, value in bound.arguments.items():
            _check_simple_type(self.name, signature.parameters[key], value)


def _payload_signature(func: Callable[..., Any], context_param: str | None) -> inspect.Signature:
    signature = inspect.signature(func)
    params = [p for name, p in signature.parameters.items() if name != context_param]
    return signature.replace(parameters=params)


@dataclass(frozen=True)
class _Shape:
    allowed: frozenset[str]
    required: frozenset[str]
    #: Parameters annotated with a JSON builtin type: (name, parameter, its types).
    typed: tuple[tuple[str, inspect.Parameter, tuple[type, ...]], ...]


def _simple_type(param: inspect.Parameter) -> tuple[str, tuple[type, ...]] | None:
    """The JSON builtin type `param` is annotated with (its name and types), if any."""
    annotation = param.annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    expected = _SIMPLE_TYPES.get(name)
    return None if expected is None else (name, expected)


def _check_simple_type(job: str, param: inspect.Parameter, value: object) -> None:
    """Reject obviously wrong types for parameters annotated with a JSON builtin type."""
    simple = _simple_type(param)
    if simple is None:
        return
    name, expected = simple
    if value is None and param.default is None:
        return
    if isinstance(value, bool) and bool not in expected:
        expected = ()
    if not isinstance(value, expected):
        raise InvalidPayload(
            f"payload for job {job!r}: {param.name!r} must be {name}, "
            f"got {type(value).__name__} {options.short(value)}"
        )


class Registry:
    """Maps job names to `JobSpec`s; one per process, filled at import time."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}

    def job(
        self,
        name: str,
        *,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 10,
        timeout: float | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
        ordering_key: str | None = None,
        on_failure: str | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of `name`.

        `concurrency_key` (with `concurrency_limit`, default 1) or
        `ordering_key` (with `on_failure`: "continue" or "block") may be
        templates filled from each payload, e.g. "user:{user_id}".
        """
        options.job_name(name)
        options.queue_name(queue)
        options.whole(priority, "priority", *options.INT4)
        options.whole(max_attempts, "max_attempts", 1, options.MAX_ATTEMPTS)
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        for key, what in ((concurrency_key, "concurrency_key"), (ordering_key, "ordering_key")):
            if key is not None:
                flow.check_template(options.text(key, what, max_bytes=flow.MAX_KEY_BYTES), what)
        flow.resolve(  # refuses contradictory defaults now, not at the first enqueue
            {},
            concurrency_key=None if concurrency_key is None else "k",
            concurrency_limit=concurrency_limit,
            ordering_key=None if ordering_key is None else "k",
            on_failure=on_failure,
        )

        def register(func: F) -> F:
            _plain_function(name, func)
            existing = self._specs.get(name)
            if existing is not None and existing.func is not func:
                qualname = f"{existing.func.__module__}.{existing.func.__qualname__}"
                raise ValueError(f"job name {name!r} is already registered by {qualname}")
            self._specs[name] = JobSpec(
                name,
                func,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
                concurrency_key=concurrency_key,
                concurrency_limit=concurrency_limit,
                ordering_key=ordering_key,
                on_failure=on_failure,
            )
            return func

        return register

    def get(self, name: str) -> JobSpec:
        """Return the spec for `name`, or raise `UnknownJob` with the names that exist."""
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise UnknownJob(
                f"no handler is registered for job {options.short(name)} (known: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def timeout(self, name: str) -> float | None:
        """The time limit of `name`'s handler; None for a name with no handler here."""
        spec = self._specs.get(name)
        return spec.timeout if spec is not None else None

    def __contains__(self, name: object) -> bool:
        return name in self._specs


def _plain_function(name: str, func: Callable[..., Any]) -> None:
    """Refuse a handler whose call only makes an object: the worker calls each handler
    on a thread and takes what it returns, so an `async def` (or generator) body would
    never run while its jobs were recorded as done."""
    for test, kind in (
        (inspect.iscoroutinefunction, "an async def function"),
        (inspect.isasyncgenfunction, "an async generator function"),
        (inspect.isgeneratorfunction, "a generator function"),
    ):
        if test(func):
            raise TypeError(
                f"job {name!r}: {getattr(func, '__qualname__', func)!r} is {kind}; the worker "
                "runs handlers on threads and never awaits or iterates them: write a plain "
                "def (call asyncio.run() inside it for async code)"
            )


registry = Registry()
job = registry.job


def load_job_modules(extra: Iterable[str] = ()) -> None:
    """Import the app's own job modules and `extra` (from JOB_MODULES) to register them.

    An entry that names no module is a setting to fix (`ConfigError`, naming
    it); a module that exists but fails inside is the module's own fault,
    and keeps its traceback.
    """
    for module in APP_JOB_MODULES:
        importlib.import_module(module)
    for module in extra:
        try:
            importlib.import_module(module)
        except schedule.ScheduleError as error:
            # every().day.at("24:00") refused as the module defines it: a definition
            # to fix, in one line, like a schedule Pillars itself refuses.
            raise ConfigError(
                f"JOB_MODULES module {module!r} defines a schedule that cannot run as"
                f" written ({type(error).__name__}: {error})"
            ) from None
        except ModuleNotFoundError as error:
            if error.name and (module == error.name or module.startswith(f"{error.name}.")):
                raise ConfigError(
                    f"JOB_MODULES names {module!r}, which cannot be imported ({error}):"
                    " check its spelling and that its package is installed or on the path"
                ) from None
            raise
