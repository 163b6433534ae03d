"""The schema's style, checked on the schema the code exports (not on schema.graphql):

* every mutation takes one argument, ``input`` (a non-null input object), or none at all;
* every enum value is UPPER_CASE;
* every scalar field, input field or argument named ``*Cents`` is ``BigInt`` (an object named
  so, like a comparison of two amounts, holds its own ``BigInt`` fields);
* every ``*Rate`` field says its unit in its description.

Each check names every offender, so one run lists all there is to fix.
"""

from __future__ import annotations

import re

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    get_named_type,
)

from graph.schema import export_sdl

UPPER_CASE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema(export_sdl())


def _own_types(schema: GraphQLSchema):
    return [t for name, t in sorted(schema.type_map.items()) if not name.startswith("__")]


def test_every_mutation_takes_one_input_argument_or_none(schema: GraphQLSchema) -> None:
    offenders = []
    for name, field in schema.mutation_type.fields.items():
        args = dict(field.args)
        if not args:
            continue
        if list(args) != ["input"]:
            offenders.append(f"{name}({', '.join(args)})")
            continue
        kind = args["input"].type
        if not (isinstance(kind, GraphQLNonNull) and isinstance(kind.of_type, GraphQLInputObjectType)):
            offenders.append(f"{name}(input: {kind}): not a non-null input object")
    assert offenders == [], "mutations must take one `input:` argument: " + "; ".join(offenders)


def test_enum_values_are_upper_case(schema: GraphQLSchema) -> None:
    offenders = [f"{t.name}.{value}" for t in _own_types(schema) if isinstance(t, GraphQLEnumType)
                 for value in t.values if not UPPER_CASE.match(value)]
    assert offenders == [], "enum values must be UPPER_CASE: " + ", ".join(offenders)


def _not_bigint(kind) -> bool:
    named = get_named_type(kind)
    return isinstance(named, GraphQLScalarType) and named.name != "BigInt"


def test_money_in_cents_is_bigint(schema: GraphQLSchema) -> None:
    offenders = []
    for t in _own_types(schema):
        if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)):
            for fname, field in t.fields.items():
                if fname.endswith("Cents") and _not_bigint(field.type):
                    offenders.append(f"{t.name}.{fname}: {field.type}")
                for aname, arg in field.args.items():
                    if aname.endswith("Cents") and _not_bigint(arg.type):
                        offenders.append(f"{t.name}.{fname}({aname}): {arg.type}")
        elif isinstance(t, GraphQLInputObjectType):
            for fname, field in t.fields.items():
                if fname.endswith("Cents") and _not_bigint(field.type):
                    offenders.append(f"{t.name}.{fname}: {field.type}")
    assert offenders == [], "money is BigInt cents: " + ", ".join(offenders)


def test_rates_say_their_unit(schema: GraphQLSchema) -> None:
    offenders = [f"{t.name}.{fname}" for t in _own_types(schema)
                 if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType))
                 for fname, field in t.fields.items()
                 if fname.endswith("Rate") and get_named_type(field.type).name == "Float"
                 and "percent" not in (field.description or "").lower()]
    assert offenders == [], "a rate's description says its unit (percent): " + ", ".join(offenders)
