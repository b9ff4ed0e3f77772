"""Turn pydantic's errors into ConfigProblems that speak in environment variables.

A rule that spans sections (see :mod:`buttress.config._rules`) names its variable and value in the error's
context; every other error is traced back from its location to the nearest variable.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import SettingsError

from buttress._redaction import mask_url_password
from buttress.config._fields import SettingField, env_var_name, fields_under, known_paths
from buttress.config._sources import RawSources
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
    if get_origin(field.info.annotation) is not dict or len(args) != 2 or len(rest) < 2:
        return None
    model: Any = args[1]
    names = [str(part) for part in rest]
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
    exc: PydanticValidationError, settings_cls: type[BaseModel]
) -> list[ConfigProblem]:
    known = known_paths(settings_cls)
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False):
        context = error.get("ctx") or {}
        if "variable" in context:  # a cross-field rule names its variable and value itself
            problems.append(ConfigProblem(str(context["variable"]), str(context["value"]), error["msg"]))
            continue
        path = _settings_path(error["loc"], known)
        children = fields_under(settings_cls, path)
        value = (
            None
            if error["type"] == "missing"
            else shown_value(error["input"], secret=any(f.secret for f in children))
        )
        if len(children) == 1 and children[0].path == path:  # a leaf
            inner = _inside_mapping_leaf(children[0], error["loc"][len(path) :], error["msg"])
            if inner is not None:
                variable, example, expected = inner
                problems.append(ConfigProblem(variable, value, expected, example))
                continue
            problems.append(ConfigProblem(children[0].variable, value, error["msg"], children[0].example))
            continue
        expected = error["msg"]
        if error["type"] in _SECTION_SHAPE_ERRORS:
            keys = ", ".join(field.path[len(path)] for field in children)
            expected = f"a JSON object with the keys {keys}, or one variable per key"
        problems.append(ConfigProblem(env_var_name(path), value, expected, _section_example(path, children)))
    return problems


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
