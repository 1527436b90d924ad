"""Maps the common public dataset layouts onto the fields of one `Row`, so every later step sees one shape.

Each mapper takes one raw record and returns the `Row.data` of its kind, or raises `FormatError`
with a reason the ledger counts. Mappers check only what the layout needs (fields present, strings
where strings belong, not blank, a transcript that can be split); normalising text and judging
whether a row is worth training on stay in `validate`, so that a reviewer can tell "this file is
not in the format we thought" from "this example is bad".
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable

HH_HUMAN = "\n\nHuman:"
HH_ASSISTANT = "\n\nAssistant:"
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
DETECT_ROWS = 20


class FormatError(Exception):
    """A record that does not fit the format it was read as; `reason` is the ledger's drop reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _field(obj: dict[str, Any], key: str) -> Any:
    # Parquet and Arrow fill a column a row lacks with None: that is a missing field, not a wrong type.
    value = obj.get(key)
    if value is None:
        raise FormatError("missing_field", f"no {key!r} field (keys: {sorted(obj)})")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError("wrong_type", f"{where} is a {type(value).__name__}, not a string")
    if not value.strip():
        raise FormatError("empty_field", f"{where} is empty")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError("wrong_type", f"{where} is a {type(value).__name__}, not a list")
    if not value:
        raise FormatError("empty_field", f"{where} is empty")
    return value


def _render_turns(turns: list[tuple[str, str]]) -> str:
    """A single user turn is the prompt itself; a longer context keeps its speakers as text."""
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    labels = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "\n".join(f"{labels.get(role, role.title())}: {text}" for role, text in turns)


def map_text(obj: dict[str, Any]) -> dict[str, Any]:
    return {"text": _string(_field(obj, "text"), "text")}


def map_messages(obj: dict[str, Any]) -> dict[str, Any]:
    """OpenAI-style `messages` pass through untouched (validate checks roles); ShareGPT is renamed."""
    if obj.get("messages") is not None:
        return {"messages": _list(obj["messages"], "messages")}
    turns = _list(_field(obj, "conversations"), "conversations")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise FormatError("wrong_type", f"conversations[{i}] is a {type(turn).__name__}, not an object")
        speaker = turn.get("from")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise FormatError(
                "bad_transcript", f"conversations[{i}].from is {speaker!r}; expected one of {sorted(SHAREGPT_ROLES)}"
            )
        messages.append({"role": role, "content": _string(turn.get("value"), f"conversations[{i}].value")})
    return {"messages": messages}


def map_alpaca(obj: dict[str, Any]) -> dict[str, Any]:
    instruction = _string(_field(obj, "instruction"), "instruction")
    extra = obj.get("input")
    if extra is not None and not isinstance(extra, str):
        raise FormatError("wrong_type", f"input is a {type(extra).__name__}, not a string")
    user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    output = _string(_field(obj, "output"), "output")
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": output}]}


def map_qa(obj: dict[str, Any]) -> dict[str, Any]:
    question = _string(_field(obj, "question"), "question")
    answer = _string(_field(obj, "answer"), "answer")
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def _split_chat(value: list[Any], where: str) -> tuple[list[tuple[str, str]], str]:
    """(context turns, final assistant answer) of a chat given as a message list."""
    turns = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise FormatError("wrong_type", f"{where}[{i}] is a {type(m).__name__}, not an object")
        turns.append((m.get("role"), _string(m.get("content"), f"{where}[{i}].content")))
    if turns[-1][0] != "assistant":
        raise FormatError("bad_transcript", f"{where} ends with a {turns[-1][0]!r} turn, not 'assistant'")
    return turns[:-1], turns[-1][1]


def map_pref(obj: dict[str, Any]) -> dict[str, Any]:
    """prompt/chosen/rejected strings; chosen/rejected may also be chats ending in the answer."""
    chosen, rejected = _field(obj, "chosen"), _field(obj, "rejected")
    if isinstance(chosen, list) or isinstance(rejected, list):
        c_context, c_answer = _split_chat(_list(chosen, "chosen"), "chosen")
        r_context, r_answer = _split_chat(_list(rejected, "rejected"), "rejected")
        if obj.get("prompt") is not None:
            prompt = obj["prompt"]
            if isinstance(prompt, list):
                prompt = _render_turns([(m.get("role"), m.get("content")) for m in prompt if isinstance(m, dict)])
            prompt = _string(prompt, "prompt")
        else:
            if c_context != r_context:
                raise FormatError("bad_transcript", "chosen and rejected differ before their final answers")
            if not any(role == "user" for role, _ in c_context):
                raise FormatError("bad_transcript", "no user turn before the final answer and no prompt field")
            prompt = _render_turns(c_context)
        return {"prompt": prompt, "chosen": c_answer, "rejected": r_answer}
    return {
        "prompt": _string(_field(obj, "prompt"), "prompt"),
        "chosen": _string(chosen, "chosen"),
        "rejected": _string(rejected, "rejected"),
    }


def _hh_turns(text: str) -> list[tuple[str, str]]:
    head, *parts = _HH_TURN.split(text)
    if head.strip():
        raise FormatError("bad_transcript", f"text before the first Human/Assistant marker: {head[:60]!r}")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [(roles[parts[i]], parts[i + 1].strip()) for i in range(0, len(parts), 2)]


def map_hh(obj: dict[str, Any]) -> dict[str, Any]:
    """Splits Anthropic HH transcripts at the last Assistant marker they share.

    The marker itself goes to neither side: the prompt ends with the Human turn (earlier turns kept
    as "Human: …\\nAssistant: …" text), and the chat template adds the assistant header at training.
    """
    chosen = _string(_field(obj, "chosen"), "chosen")
    rejected = _string(_field(obj, "rejected"), "rejected")
    shared = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        shared += 1
    cut = chosen.rfind(HH_ASSISTANT, 0, shared)  # the whole marker inside the shared part
    if cut < 0:
        raise FormatError(
            "bad_transcript", "chosen and rejected share no prefix ending at an '\\n\\nAssistant:' marker"
        )
    answers = (chosen[cut + len(HH_ASSISTANT) :], rejected[cut + len(HH_ASSISTANT) :])
    for name, answer in zip(("chosen", "rejected"), answers):
        if _HH_TURN.search(answer):
            raise FormatError("bad_transcript", f"{name} goes on for more turns after the shared prefix")
    context = _hh_turns(chosen[:cut])
    if not context or context[-1][0] != "user":
        raise FormatError("bad_transcript", "the shared prefix does not end with a Human turn")
    for role, text in context:
        if not text:
            raise FormatError("empty_field", f"an empty {role} turn in the prompt")
    return {
        "prompt": _render_turns(context),
        "chosen": _string(answers[0].strip(), "chosen answer"),
        "rejected": _string(answers[1].strip(), "rejected answer"),
    }


# format name -> (Row.kind, mapper). Order is detection priority: the most specific layout first.
FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "hh": ("pref", map_hh),
    "pref": ("pref", map_pref),
    "messages": ("sft", map_messages),
    "alpaca": ("sft", map_alpaca),
    "qa": ("sft", map_qa),
    "text": ("text", map_text),
}


# The keys each format needs, for telling a reader which one a misfit row came closest to.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "pref": ("prompt", "chosen", "rejected"),
    "messages": ("messages",),
    "alpaca": ("instruction", "output"),
    "qa": ("question", "answer"),
    "text": ("text",),
}
LAYOUTS = (
    "text; messages or conversations; instruction/input/output; question/answer; prompt/chosen/rejected; "
    "or HH transcripts in chosen/rejected"
)


def row_format(obj: dict[str, Any]) -> str | None:
    """The format one record fits, most specific first; None when it fits none.

    Formats belong to rows, not files: a file may mix chat, Alpaca and preference rows, and each
    is read as what it is. A key holding null counts as absent (Parquet fills missing columns so).
    """
    get = obj.get  # called once per record of every corpus: plain lookups, no key set
    chosen, rejected = get("chosen"), get("rejected")
    if chosen is not None and rejected is not None:
        if (
            get("prompt") is None
            and isinstance(chosen, str)
            and isinstance(rejected, str)
            and HH_HUMAN in chosen
            and HH_HUMAN in rejected
        ):
            return "hh"
        if get("prompt") is not None or isinstance(chosen, list):
            return "pref"
    if get("messages") is not None or get("conversations") is not None:
        return "messages"
    if get("instruction") is not None and get("output") is not None:
        return "alpaca"
    if get("question") is not None and get("answer") is not None:
        return "qa"
    if get("text") is not None:
        return "text"
    return None


def misfit_detail(obj: dict[str, Any]) -> str:
    """Why a record fits no format, naming the format it came closest to and what that one lacks."""
    keys = {k for k, v in obj.items() if v is not None}
    overlap = {fmt: len(keys.intersection(need)) for fmt, need in REQUIRED_KEYS.items()}
    best = max(overlap, key=lambda f: overlap[f])
    if not overlap[best]:
        return f"keys {sorted(obj)} fit no format; expected {LAYOUTS}"
    missing = [k for k in REQUIRED_KEYS[best] if k not in keys]
    return f"keys {sorted(obj)} fit no format; closest is {best}, which also needs {missing}"


def detect_format(objs: list[dict[str, Any]]) -> str:
    """The format most of the first rows fit; ties go to the more specific format.

    Rows are read by their own format (`row_format`); this names a file's main one, and refuses a
    file none of whose first rows fits any format (a table of something else, not a training set).
    """
    sample = [o for o in objs[:DETECT_ROWS] if isinstance(o, dict)]
    votes = Counter(f for f in map(row_format, sample) if f is not None)
    if not votes:
        seen = sorted({k for o in sample for k in o})
        raise ValueError(
            f"no known format fits the first {len(sample)} rows (keys seen: {seen}); "
            f"expected one of {sorted(FORMATS)}: {LAYOUTS}. "
            "Pass fmt= to read the file as one of them."
        )
    order = list(FORMATS)
    return max(votes, key=lambda f: (votes[f], -order.index(f)))


def map_row(fmt: str, obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(Row.kind, Row.data) of one record read as `fmt`; raises FormatError."""
    kind, mapper = FORMATS[fmt]
    return kind, mapper(obj)
