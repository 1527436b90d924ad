"""Every field of the run config says what it is, at any depth, in a sentence a form can show.

A data scientist starts runs from Prefect UI forms built from `RunConfig`'s JSON schema: a field
without a description shows only its title ("Minhash Num Perm"), and an essay buries the form.
tests/flows/test_deployments.py runs the same walk over the deployments' real parameter schemas.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

LIMIT = 200  # characters; a form shows the description under the field, so one or two lines


def description_problems(
    node: dict, defs: dict | None = None, where: str = "config", limit: int = LIMIT, seen: set[str] | None = None
) -> list[str]:
    """Every property under `node` (following `$ref`s into `defs`, `anyOf`/`oneOf`/`allOf` members, list
    items and mapping values) without a description or with one over `limit`, and every section
    (a referenced model) whose own description is over `limit`. Each is named by its dotted path.
    A model referenced twice is walked once, under the first path; `seen` collects their names."""
    defs = defs if defs is not None else node.get("$defs") or node.get("definitions") or {}
    seen = seen if seen is not None else set()
    problems: list[str] = []
    if len(str(node.get("description", ""))) > limit and "properties" in node:  # the top model's docstring
        problems.append(f"{where}: section description of {len(node['description'])} characters (limit {limit})")
    for key in ("anyOf", "oneOf", "allOf"):
        for member in node.get(key, []):
            problems += description_problems(member, defs, where, limit, seen)
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            section = defs[name]
            if len(str(section.get("description", ""))) > limit:
                problems.append(
                    f"{where}: section description of {len(section['description'])} characters "
                    f"({name}'s docstring; limit {limit})"
                )
            problems += description_problems(
                {k: v for k, v in section.items() if k != "description"}, defs, where, limit, seen
            )
    for key, prop in node.get("properties", {}).items():
        here = f"{where}.{key}"
        text = str(prop.get("description", "")).strip()
        if not text:
            problems.append(f"{here}: no description")
        elif len(text) > limit:
            problems.append(f"{here}: description of {len(text)} characters (limit {limit})")
        problems += description_problems(prop, defs, here, limit, seen)
    if isinstance(node.get("additionalProperties"), dict):
        problems += description_problems(node["additionalProperties"], defs, f"{where}.<key>", limit, seen)
    if isinstance(node.get("items"), dict):
        problems += description_problems(node["items"], defs, f"{where}[]", limit, seen)
    return problems


class _Leaf(BaseModel):
    said: int = Field(1, description="fine")
    bare: int = 2


class _Optional(BaseModel):
    bare: int = 2


class _Value(BaseModel):
    bare: int = 2


class _Item(BaseModel):
    """A docstring that runs on."""

    bare: int = 2


class _Form(BaseModel):
    leaf: _Leaf = Field(default_factory=_Leaf, description="a section")
    again: _Leaf = Field(default_factory=_Leaf, description="walked once")
    maybe: _Optional | None = Field(None, description="an anyOf")
    mapping: dict[str, _Value] = Field(default_factory=dict, description="a mapping")
    listed: list[_Item] = Field(default_factory=list, description="a list")
    essay: str = Field("", description="x" * 30)
    plain: int = 0


def test_description_problems_names_every_offender_at_any_depth() -> None:
    seen: set[str] = set()
    problems = description_problems(_Form.model_json_schema(), limit=20, seen=seen)
    assert problems == [
        "config.leaf.bare: no description",
        "config.maybe.bare: no description",
        "config.mapping.<key>.bare: no description",
        "config.listed[]: section description of 25 characters (_Item's docstring; limit 20)",
        "config.listed[].bare: no description",
        "config.essay: description of 30 characters (limit 20)",
        "config.plain: no description",
    ]
    assert seen == {"_Leaf", "_Optional", "_Value", "_Item"}


def test_every_run_config_field_says_what_it_is() -> None:
    from configs.schema import RunConfig

    schema = RunConfig.model_json_schema()
    seen: set[str] = set()
    problems = description_problems(schema, seen=seen)
    assert not problems, f"{len(problems)} config fields a form would show badly:\n" + "\n".join(problems)
    assert seen == set(schema["$defs"]), "the walk missed a section"
