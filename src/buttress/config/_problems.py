"""Turn pydantic's errors into ConfigProblems that speak in environment variables.

A rule that spans sections (see :mod:`buttress.config._rules`) names its variables and values in the
error's context; every other error is traced back from its location to the nearest variable, then to the
variable the user wrote (its spelling, its .env line, or the JSON section it sits in). An unknown key is
reported with a "did you mean" (:mod:`buttress.config._unknown`).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

from buttress._redaction import mask_url_password
from buttress.config._fields import (
    ENV_PREFIX,
    NESTED_DELIMITER,
    SettingField,
    env_var_name,
    fields_under,
    known_paths,
)
from buttress.config._sources import RawSources, Undecodable
from buttress.config._unknown import unknown_path_problem
from buttress.errors import MASK, ConfigProblem

__all__ = ["problem_from_settings_error", "problems_from_validation_error", "shown_value"]

_SECTION_SHAPE_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type"})


def shown_value(raw: object, *, secret: bool) -> str:
    """The offending value as it may appear in a message: secrets masked, URL passwords masked."""
    if secret:
        return MASK
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return mask_url_password(text)


def _section_example(path: tuple[str, ...], children: list[SettingField]) -> str:
    return json.dumps(
        {field.path[len(path)]: field.info.examples[0] for field in children if field.info.examples}
    )


def _settings_path(loc: tuple[int | str, ...], known: set[tuple[str, ...]]) -> tuple[str, ...]:
    """The longest prefix of an error location that is a leaf or a section (drops indexes and tags)."""
    path: tuple[str, ...] = ()
    for part in loc:
        candidate = (*path, str(part))
        if candidate not in known:
            break
        path = candidate
    return path


def _inside_mapping_leaf(
    field: SettingField, rest: tuple[int | str, ...], message: str
) -> tuple[str, str, str] | None:
    """For an error inside a ``dict[str, Model]`` leaf: the exact variable and the nested field's example.

    ``BUTTRESS_RESILIENCE__PIPELINES__SPOTIFY__RETRY__ATTEMPTS=0`` is reported under that variable,
    not under the whole ``BUTTRESS_RESILIENCE__PIPELINES`` mapping.
    """
    args = get_args(field.info.annotation)
    names = [part for part in rest if isinstance(part, str)]  # list indexes name no variable
    if get_origin(field.info.annotation) is not dict or len(args) != 2 or len(names) < 2:
        return None
    model: Any = args[1]
    example = ""
    for name in names[1:]:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        if name not in model.model_fields:
            message = f"{message}; the names here are {', '.join(model.model_fields)}"
            break
        info = model.model_fields[name]
        example = shown_value((info.examples or [""])[0], secret=False) if info.examples else ""
        model = info.annotation
    return env_var_name((*field.path, *names)), example, message


def problems_from_validation_error(
    exc: PydanticValidationError, settings_cls: type[BaseModel], raw: RawSources | None = None
) -> list[ConfigProblem]:
    """One problem per error, each under the variable the user wrote (``raw``: what was read, and where)."""
    raw = raw if raw is not None else RawSources({}, {})
    known = known_paths(settings_cls)
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False):
        problems += [_placed(problem, raw) for problem in _problems_of(error, settings_cls, known, raw)]
    return problems


def _problems_of(
    error: ErrorDetails, settings_cls: type[BaseModel], known: set[tuple[str, ...]], raw: RawSources
) -> list[ConfigProblem]:
    context = error.get("ctx") or {}
    if "problems" in context:  # the section rules name each variable and value themselves
        return [ConfigProblem(variable, value, message) for variable, value, message in context["problems"]]
    if error["type"] == "extra_forbidden":
        parts = tuple(str(part) for part in error["loc"])
        if raw.sets_at_or_below(env_var_name(parts)):
            return []  # a variable the user set: reported, with a suggestion, by unknown_variable_problems
        unknown = unknown_path_problem(settings_cls, parts, env_var_name(parts), None)
        return [unknown or ConfigProblem(env_var_name(parts), MASK, error["msg"])]
    path = _settings_path(error["loc"], known)
    children = fields_under(settings_cls, path)
    value = (
        None
        if error["type"] == "missing"
        else shown_value(error["input"], secret=any(f.secret for f in children))
    )
    if len(children) == 1 and children[0].path == path:  # a leaf
        inner = _inside_mapping_leaf(children[0], error["loc"][len(path) :], error["msg"])
        variable, example, expected = inner or (children[0].variable, children[0].example, error["msg"])
    else:
        variable, example, expected = env_var_name(path), _section_example(path, children), error["msg"]
        if error["type"] in _SECTION_SHAPE_ERRORS:
            keys = ", ".join(field.path[len(path)] for field in children)
            expected = f"a JSON object with the keys {keys}, or one variable per key"
    if isinstance(error["input"], Undecodable):
        expected = _not_json(error["type"], error["input"].reason, children, expected)
    return [ConfigProblem(variable, value, expected, example)]


def _not_json(kind: str, reason: str, children: list[SettingField], expected: str) -> str:
    """What a value that had to be JSON, and did not parse, should have been."""
    if kind in {"list_type", "tuple_type", "set_type"}:
        return f"a JSON list ({reason})"
    if kind in _SECTION_SHAPE_ERRORS and len(children) > 1:
        return f"a JSON object ({reason}), or one variable per key such as {children[0].variable}"
    if kind in _SECTION_SHAPE_ERRORS:
        return f"a JSON object ({reason})"
    return f"JSON ({reason}): {expected}"


def _placed(problem: ConfigProblem, raw: RawSources) -> ConfigProblem:
    """The problem under the variable as written, with where it was set: a .env line, a JSON section."""
    parts = tuple(problem.variable.removeprefix(ENV_PREFIX).split(NESTED_DELIMITER))
    setter = raw.setter(parts)
    if setter is None:
        return problem
    where = raw.where(setter)
    if setter == problem.variable:
        return replace(problem, variable=raw.as_written(setter), source=where)
    inside = f"in {raw.as_written(setter)}"
    return replace(problem, source=inside if where is None else f"{inside}, {where}")


def problem_from_settings_error(
    exc: SettingsError, settings_cls: type[BaseModel], raw: RawSources
) -> ConfigProblem:
    """pydantic-settings stops at the first section whose JSON does not parse and names its field."""
    match = re.search(r'field "([^"]+)"', str(exc))
    path = (match.group(1),) if match else ()
    children = fields_under(settings_cls, path)
    variable = env_var_name(path)
    value = raw.lookup(variable)
    reason = str(exc.__cause__) if exc.__cause__ is not None else str(exc)
    return ConfigProblem(
        variable,
        None if value is None else shown_value(value, secret=any(field.secret for field in children)),
        f"a JSON object ({reason}), or one variable per key such as {children[0].variable}",
        _section_example(path, children),
    )
