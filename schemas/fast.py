"""Events without pydantic's cost where it can be spared: msgspec types generated from the
pydantic models, for the sink's reading of bodies and for log import's building of events.

schemas/events.py stays the one definition of an event. From it this module derives, once at
import, a msgspec Struct per model (same fields, defaults, bounds, forbidden extra fields, `kind`
as the tag of a tagged union) and decodes a body with it in about a third of pydantic's time.
msgspec is the stricter reader (no lax coercions: "5" is not an int, 5.0 not an int, "true" not a
bool), so what it accepts pydantic accepts as the same values; whatever it refuses goes to
pydantic, which decides: a model when pydantic accepts it, pydantic's ValidationError (the
dead-letter reason) when not. tests/unit/test_fast_parse.py checks both agree on a corpus of every
event kind and on mutated bodies of each.

A decoded Struct has the model's attribute names, so sink.loader.rows_for reads either; `kind`
is a class attribute; `to_model()` and `model_dump_json()` give the pydantic model and its body
where one is needed (rare paths: a dead letter).

Building (`build_event`, logimport's workers): the same fields through `msgspec.convert` into a
"wire" Struct, whose `kind` is an ordinary field in its declared place, so msgspec writes the body
pydantic would write, byte for byte. The two write some floats differently (1e16 / 1e+16); an event
holding one is built by pydantic.
"""
from __future__ import annotations

import inspect
import math
import types
import typing
from functools import lru_cache
from typing import Any

import annotated_types
import msgspec
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from schemas.events import (DdlEvent, DmlEvent, Event, HeartbeatEvent, LogImportEvent, OperationEvent, ScriptEvent,
                            SecurityEvent, parse_event)

_EVENT_MODELS = (DmlEvent, DdlEvent, OperationEvent, ScriptEvent, HeartbeatEvent, SecurityEvent, LogImportEvent)
_structs: dict[type, type] = {}


def _type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _struct(annotation)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_type(a) for a in typing.get_args(annotation))]
    if origin is list:
        return list[_type(typing.get_args(annotation)[0])]
    if origin is dict:
        key, value = typing.get_args(annotation)
        return dict[_type(key), _type(value)]
    return annotation   # str, int, float, bool, UUID, datetime, Any, Literal[...], None


def _to_model(self):
    """The pydantic model of this event (validated by pydantic: the authority)."""
    return parse_event(msgspec.json.encode(self))


def _model_dump_json(self) -> str:
    """The body pydantic's model would write (a rare path: a dead letter)."""
    return _to_model(self).model_dump_json()


def _struct(model: type[BaseModel], tag: str | None = None, wire: bool = False) -> type:
    if (model, tag, wire) in _structs:
        return _structs[(model, tag, wire)]
    if model.model_config.get("extra") != "forbid":
        raise TypeError(f"{model.__name__}: only models that forbid extra fields have a fast form")
    fields = []
    for name, info in model.model_fields.items():
        if name == "kind" and tag is not None:
            continue   # the union's tag
        if info.alias is not None:
            raise TypeError(f"{model.__name__}.{name}: an alias has no fast form")
        annotation = _type(info.annotation)
        bounds = {}
        for constraint in info.metadata:
            if isinstance(constraint, annotated_types.Ge):
                bounds["ge"] = constraint.ge
            elif isinstance(constraint, annotated_types.Le):
                bounds["le"] = constraint.le
            else:   # a constraint msgspec would not check: better no fast form than a laxer one
                raise TypeError(f"{model.__name__}.{name}: {constraint!r} has no fast form")
        if bounds:
            annotation = typing.Annotated[annotation, msgspec.Meta(**bounds)]
        if info.default_factory is not None:
            fields.append((name, annotation, msgspec.field(default_factory=info.default_factory)))
        elif info.default is not PydanticUndefined:
            fields.append((name, annotation, info.default))
        else:
            fields.append((name, annotation))
    namespace = ({"kind": tag, "to_model": _to_model, "model_dump_json": _model_dump_json}
                 if tag is not None else {})
    if wire:   # the model's own methods and properties, read through the same attribute names
        namespace.update({name: inspect.getattr_static(model, name) for name in ("object_key", "time")})
    struct = msgspec.defstruct(model.__name__, fields, kw_only=True, forbid_unknown_fields=True, frozen=True,
                               tag_field="kind" if tag is not None else None, tag=tag, namespace=namespace)
    _structs[(model, tag, wire)] = struct
    return struct


def _kind(model: type[BaseModel]) -> str:
    (kind,) = typing.get_args(model.model_fields["kind"].annotation)
    return kind


_decode = msgspec.json.Decoder(typing.Union[tuple(_struct(m, _kind(m)) for m in _EVENT_MODELS)]).decode


def parse_event_fast(data: bytes) -> Event | Any:
    """An event body as a Struct of this module (or, when msgspec refuses it and pydantic does not,
    as pydantic's model); raises pydantic.ValidationError (or ValueError) for what is no event."""
    try:
        return _decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
        return parse_event(data)   # pydantic decides, and says why in its own words


def wire_struct(model: type[BaseModel]) -> type:
    """The Struct of an event model that msgspec writes as pydantic's body, byte for byte: `kind`
    an ordinary field in its declared place (not a tag written first), the model's `object_key()`
    and `time`, so schemas.wire.encode and cloudevent_headers take it as they take the model."""
    return _struct(model, None, wire=True)


def build_event(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """The event `fields` make, without pydantic's cost where it can be spared: a wire Struct when
    msgspec accepts the fields (it is the stricter: what it accepts pydantic accepts as the same
    values, and both write the same body), else pydantic's model, which raises ValidationError for
    what is no event. For a producer's own values (logimport's workers); a reader of untrusted
    input still goes through parse_event. tests/unit/test_fast_parse.py checks both agree."""
    for path, deep in _float_paths(model):
        value = _at(fields, path)
        if value and _odd_float(value, deep):   # None, 0 and empty lists are alike both ways
            return model(**fields)
    try:
        return msgspec.convert(fields, wire_struct(model))
    except msgspec.ValidationError:
        return model(**fields)


def _at(fields: dict, path: tuple[str, ...]) -> Any:
    value: Any = fields
    for key in path:
        if not isinstance(value, dict):
            return None   # not a mapping: msgspec refuses it anyway
        value = value.get(key)
    return value


def _odd_float(value: Any, deep: bool) -> bool:
    """A float msgspec and pydantic write differently: where Python's repr takes an exponent
    (pydantic 1e+16 and 1e-05, msgspec 1e16 and 0.00001). Not finite: both write null. An int in
    a float field is written as the float both make of it."""
    if type(value) is int and not deep:
        try:
            value = float(value)
        except OverflowError:
            return True
    if type(value) is float:
        return value != 0 and math.isfinite(value) and not 1e-4 <= abs(value) < 1e16
    if deep and isinstance(value, dict):
        return any(_odd_float(v, True) for v in value.values())
    if deep and isinstance(value, list):
        return any(_odd_float(v, True) for v in value)
    return False


@lru_cache(maxsize=None)
def _float_paths(model: type[BaseModel]) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """Where a model's fields may hold a float: (path, whether to look inside a dict or list)."""
    found = []

    def walk(m: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in m.model_fields.items():
            leaves = [a for a in _leaves(info.annotation) if a is not type(None)]
            if all(isinstance(a, type) and issubclass(a, BaseModel) for a in leaves):
                for sub in leaves:   # a nested model: its own fields
                    walk(sub, prefix + (name,))
            elif any(_may_hold_float(a) for a in leaves):
                found.append((prefix + (name,), leaves != [float]))

    walk(model, ())
    return tuple(found)


def _may_hold_float(annotation: Any) -> bool:
    if annotation is Any or annotation is float:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_may_hold_float(f.annotation) for f in annotation.model_fields.values())
    return any(_may_hold_float(a) for a in typing.get_args(annotation))


def _leaves(annotation: Any) -> list:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [leaf for a in typing.get_args(annotation) for leaf in _leaves(a)]
    return [annotation]
