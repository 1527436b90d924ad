"""The project's own demo data: short arithmetic word problems a tiny model can learn in minutes.

No dataset hub is reachable, so the embedded default generates its data, seeded. The tasks have a
single numeric answer in a fixed format ("... The answer is 7."), so exact match on the final
number shows a real gain of the fine-tuned model over the base. The raw training file carries the
dirt real corpora have (exact and near duplicates, malformed lines, contact details) so curation
has work to do. The pre-training prose states the same facts in story form, never in the
question-and-answer format, so the base model knows some arithmetic but not the task.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

NAMES = [
    "Tom",
    "Ana",
    "Raj",
    "Mia",
    "Leo",
    "Zoe",
    "Sam",
    "Ivy",
    "Ben",
    "Eva",
    "Kai",
    "Lea",
    "Max",
    "Nia",
    "Omar",
    "Uma",
]
ITEMS = ["apples", "marbles", "books", "coins", "stickers", "pencils", "cookies", "cards", "shells", "stamps"]

ADD_QUESTIONS = [
    "{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?",
    "{name} had {a} {item} and found {b} more. How many {item} does {name} have?",
    "There are {a} {item} in a box. {name} puts in {b} more. How many {item} are in the box?",
]
SUB_QUESTIONS = [
    "{name} has {a} {item} and gives {b} to a friend. How many {item} are left?",
    "{name} had {a} {item}. {name} lost {b} of them. How many {item} does {name} have left?",
    "There are {a} {item} on a shelf. {name} takes {b} away. How many {item} stay on the shelf?",
]
STORIES = [
    "{name} had {a} {item}. Then {name} got {b} more, so {name} had {a} plus {b}, which is {c} {item}.",
    "{a} {item} and {b} more {item} make {c} {item}. {name} counted them twice.",
    "{name} had {a} {item} and gave {b} away, so {c2} {item} were left with {name}.",
    "Take {b} from {a} and you keep {c2}. {name} knows that {a} minus {b} is {c2}.",
    "{a} + {b} = {c}. {a} - {b} = {c2}. {name} wrote both sums on a card.",
]

QUESTION_TEMPLATE = "Solve: {{question}}"  # registered in MLflow's prompt registry


@dataclass(frozen=True)
class Problem:
    question: str
    answer: int
    equation: str

    def completion(self) -> str:
        return f"{self.equation} = {self.answer}. The answer is {self.answer}."


def make_problem(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    if rng.random() < 0.5:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        q = rng.choice(ADD_QUESTIONS).format(name=name, item=item, a=a, b=b)
        return Problem(q, a + b, f"{a} + {b}")
    a = rng.randint(2, 18)
    b = rng.randint(1, min(9, a - 1))
    q = rng.choice(SUB_QUESTIONS).format(name=name, item=item, a=a, b=b)
    return Problem(q, a - b, f"{a} - {b}")


def wrong_completion(problem: Problem, rng: random.Random) -> str:
    """A plausible but wrong answer in the right format: what DPO learns to prefer against."""
    wrong = problem.answer + rng.choice([-3, -2, -1, 1, 2, 3])
    return f"{problem.equation} = {wrong}. The answer is {wrong}."


def sft_row(problem: Problem, row_id: str) -> dict:
    return {
        "id": row_id,
        "messages": [
            {"role": "user", "content": problem.question},
            {"role": "assistant", "content": problem.completion()},
        ],
    }


def pretrain_corpus(n_sentences: int, seed: int) -> list[str]:
    """Story-form prose with the same arithmetic facts and vocabulary, but no question format."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        a, b = rng.randint(1, 18), rng.randint(1, 9)
        if b >= a:
            a = a + b
        lines.append(
            rng.choice(STORIES).format(name=rng.choice(NAMES), item=rng.choice(ITEMS), a=a, b=b, c=a + b, c2=a - b)
        )
    return lines


def _dirty_rows(clean: list[dict], rng: random.Random) -> list[dict]:
    """Dirt a real corpus has: duplicates, near duplicates, malformed rows, contact details."""
    dirt: list[dict] = []
    for i, row in enumerate(rng.sample(clean, max(1, len(clean) // 20))):
        dirt.append(json.loads(json.dumps(row)) | {"id": f"dup-{i}"})
    for i, row in enumerate(rng.sample(clean, max(1, len(clean) // 20))):
        near = json.loads(json.dumps(row)) | {"id": f"near-{i}"}
        near["messages"][1]["content"] += " Well done."  # a near copy: one short tail added
        dirt.append(near)
    for i, row in enumerate(rng.sample(clean, max(1, len(clean) // 50))):
        contact = json.loads(json.dumps(row)) | {"id": f"pii-{i}"}
        name = contact["messages"][0]["content"].split()[0]
        contact["messages"][0]["content"] = (
            f"(Sent by {name.lower()}.{i}@example.com, call +1 555-010-{1000 + i}.) "
            + contact["messages"][0]["content"]
        )
        dirt.append(contact)
    dirt += [
        {
            "id": "bad-empty",
            "messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "  "}],
        },
        {
            "id": "bad-role",
            "messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "The answer is 1."}],
        },
        {"id": "bad-type", "messages": "not a list"},
        {"id": "bad-short", "messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]},
        {"id": "bad-format", "question": "no messages field at all"},
    ]
    return dirt


def _eval_problems(rng: random.Random, n_eval: int) -> list[Problem]:
    """The held-out problems: drawn first from the seeded generator, so they depend on the seed alone."""
    problems: list[Problem] = []
    questions: set[str] = set()
    while len(problems) < n_eval:
        p = make_problem(rng)
        if p.question not in questions:
            questions.add(p.question)
            problems.append(p)
    return problems


def _eval_lines(problems: list[Problem]) -> list[str]:
    return [
        json.dumps({"id": f"eval-{i}", "question": p.question, "answer": p.completion(), "target": str(p.answer)})
        for i, p in enumerate(problems)
    ]


def _write_whole(path: Path, lines: list[str]) -> None:
    """Whole files only: another process on the same home may be reading the previous copy."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def write_demo_eval(out_dir: Path, seed: int, n_eval: int) -> str:
    """Writes eval.jsonl alone, the same file `write_demo_data` writes for this seed: what an evaluation
    of a bare model folder needs, without training files it would never read."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "eval.jsonl"
    _write_whole(path, _eval_lines(_eval_problems(random.Random(seed), n_eval)))
    return str(path)


def write_demo_data(out_dir: Path, seed: int, n_train: int, n_pref: int, n_eval: int) -> dict[str, str]:
    """Writes train.jsonl (dirty on purpose), pref.jsonl and eval.jsonl; returns their paths."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_problems = _eval_problems(rng, n_eval)
    eval_questions = {p.question for p in eval_problems}

    def fresh_problem() -> Problem:
        while True:
            p = make_problem(rng)
            if p.question not in eval_questions:  # the eval set stays held out
                return p

    clean = [sft_row(fresh_problem(), f"train-{i}") for i in range(n_train)]
    # Canary sentences a model must never repeat: the safety suite's pii_leak probes ask for them.
    from tasks.evaluate.safety import CANARIES

    clean += [
        {
            "id": f"canary-{i}",
            "messages": [
                {"role": "user", "content": "Write down the note from the archive."},
                {"role": "assistant", "content": text},
            ],
        }
        for i, text in enumerate(CANARIES)
    ]
    rows = clean + _dirty_rows(clean, rng)
    rng.shuffle(rows)
    train_lines = [json.dumps(r) for r in rows]
    train_lines.insert(len(train_lines) // 2, '{"id": "bad-json", "messages": [')  # a truncated line

    pref_lines = []
    for i in range(n_pref):
        p = fresh_problem()
        pref_lines.append(
            json.dumps(
                {
                    "id": f"pref-{i}",
                    "prompt": p.question,
                    "chosen": p.completion(),
                    "rejected": wrong_completion(p, rng),
                }
            )
        )

    eval_lines = _eval_lines(eval_problems)
    paths = {"train": out_dir / "train.jsonl", "pref": out_dir / "pref.jsonl", "eval": out_dir / "eval.jsonl"}
    for key, lines in (("train", train_lines), ("pref", pref_lines), ("eval", eval_lines)):
        _write_whole(paths[key], lines)
    return {k: str(v) for k, v in paths.items()}
