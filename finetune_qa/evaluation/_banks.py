"""The sets of a suite, the task prompts, the refusal phrases and the off-topic bank.

Data, not logic: what the other modules of :mod:`finetune_qa.evaluation` ask with and
look for, and the order sets and scores are reported in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

EvalSet = Literal["verbatim", "variations", "unrelated", "on_topic", "rephrasing", "off_topic"]
"""The sets a case can belong to: a suite from QA pairs has the first three, one from a
knowledge file (questions a person wrote, with the facts their answers need) the last three."""

EVAL_SETS: tuple[EvalSet, ...] = ("verbatim", "variations", "unrelated")
"""The sets of a suite built from QA pairs, in report order."""

KNOWLEDGE_SETS: tuple[EvalSet, ...] = ("on_topic", "rephrasing", "off_topic")
"""The sets of a suite read from a knowledge file (the questions' ``kind``), in report order."""

TRAINING_QUESTIONS = "training questions"
"""What the ``verbatim`` set is called when the model was trained on its questions."""

DEFAULT_SET_NAMES: dict[str, str] = {
    "variations": "rephrasings",
    "unrelated": "off-topic questions",
    "on_topic": "on-topic questions",
    "rephrasing": "rephrasings",
    "off_topic": "off-topic questions",
}
"""What a set is called in results and reports unless its suite names it otherwise.

``verbatim`` has no default: its questions are the training questions
(:data:`TRAINING_QUESTIONS`) or a file of yours, and the suite's builder says which."""

PARAPHRASE_TASK_PHRASE = "rephrase test questions for a chatbot evaluation"
"""The phrase that identifies :data:`PARAPHRASE_PROMPT` (the offline backend keys on it)."""

JUDGE_TASK_PHRASE = "grade answers for a chatbot evaluation"
"""The phrase that identifies :data:`JUDGE_PROMPT` (the offline backend keys on it)."""

PARAPHRASE_PROMPT = (
    f"You {PARAPHRASE_TASK_PHRASE}. The user gives a question and how many rephrasings "
    "are wanted. Write that many different questions that ask for exactly the same "
    "information: keep the meaning and the key terms (names, products, numbers), change "
    "the wording and the sentence structure, as different customers would ask it. "
    'Reply with a numbered list, one rephrased question per line ("1. ..."), and nothing '
    "else."
)
"""System prompt of :meth:`EvalSuite.generate_variations`."""

JUDGE_PROMPT = (
    f"You {JUDGE_TASK_PHRASE}. You get a question, the reference answer and a candidate "
    "answer. Score how well the candidate conveys the facts of the reference answer: "
    "5 = the same facts, complete and correct; 4 = correct, a minor detail missing; "
    "3 = partly correct; 2 = mostly wrong or missing; 1 = wrong, unrelated or a refusal. "
    "Wording and length do not matter, facts do. Reply with one JSON object and nothing "
    'else: {"score": <1-5>, "reason": "<one short sentence>"}'
)
"""System prompt of :class:`JudgeScorer`."""

DEFAULT_REFUSAL_PHRASES: tuple[str, ...] = (
    "I can only answer questions about",
    "I can only help with questions about",
    "I can only help with",
    "I'm sorry, but I can't",
    "I am sorry, but I cannot",
    "I can't help with that",
    "I cannot help with that",
    "I can't answer that",
    "I cannot answer that",
    "I'm not able to answer",
    "I am not able to answer",
    "I'm unable to answer",
    "I am unable to answer",
    "I'm unable to help with",
    "I am unable to help with",
    "that is not something I can help with",
    "that's not something I can help with",
    "that is outside the scope of",
    "that's outside the scope of",
    "that question is outside the scope of",
    "this question is outside the scope of",
    "I don't have information about",
    "I do not have information about",
    "I don't know",
    "I do not know",
    "that question is not about",
    "this question is not about",
)
"""Phrases that make an answer a refusal when it starts with one (see :func:`is_refusal`)."""

UNRELATED_QUESTIONS: tuple[str, ...] = (
    "What is Star Wars?",
    "Who painted the Mona Lisa?",
    "What is the capital of Australia?",
    "How far is the Moon from Earth?",
    "Who won the 2018 FIFA World Cup?",
    "How do I make a sourdough starter?",
    "What is the boiling point of water at sea level?",
    "How do I reverse a list in Python?",
    "Who wrote Pride and Prejudice?",
    "What is photosynthesis?",
    "How many players are on a basketball court at once?",
    "What is the tallest mountain in the world?",
    "How long should I boil an egg?",
    "What is the speed of light?",
    "Who was the lead singer of Queen?",
    "What does DNA stand for?",
    "How do I center a div in CSS?",
    "What is The Lord of the Rings about?",
    "Why is the sky blue?",
    "How does castling work in chess?",
    "What is the difference between a virus and a bacterium?",
    "Who was the first person to walk on the Moon?",
    "How do I make fluffy pancakes?",
    "What is the Pythagorean theorem?",
    "Which planet is the largest in our solar system?",
    "What is a black hole?",
    "How many bones are in the human body?",
    "What is the offside rule in football?",
    "How do I write a SQL join?",
    "What is the population of Japan?",
    "Who directed Jurassic Park?",
    "What is the best way to cook rice?",
    "What language is spoken in Brazil?",
    "When did the Second World War end?",
    "What is the meaning of life?",
    "How does a rainbow form?",
    "What is inflation in economics?",
    "How do I change a flat tyre?",
    "Who invented the telephone?",
    "What goes into guacamole?",
    "How many rings are on the Olympic flag?",
    "What is machine learning?",
    "What is a haiku?",
    "Why do volcanoes erupt?",
    "What is the longest river in Africa?",
    "Who is Sherlock Holmes?",
    "What is the difference between git merge and git rebase?",
    "How should I train for a marathon?",
    "What is the chemical symbol for gold?",
    "What are the Harry Potter books about?",
    "How do bees make honey?",
    "What is quantum computing?",
    "Who composed The Four Seasons?",
    "What time zone is New York in?",
    "How do I grow tomatoes on a balcony?",
    "How long is the Great Wall of China?",
    "How does a JavaScript promise work?",
    "Who holds the 100 metres world record?",
    "What is the best pizza topping?",
    "How do I tie a tie?",
    "How does the stock market work?",
    "Why do cats purr?",
    "What happens in Hamlet?",
    "How do airplanes stay in the air?",
    "What is a regular expression?",
)
"""The built-in bank of off-topic questions: trivia, pop culture, science, cooking, sport, code."""

DEFAULT_EVAL_CONCURRENCY = 32
"""Questions in flight at once in :meth:`EvalSuite.run` by default (a ChatModel's is 8)."""

_SCORE_ORDER = (
    "exact",
    "contains",
    "f1",
    "rouge_l",
    "stop",
    "answered",
    "right_fact",
    "refused",
    "judge",
)


def _ordered_sets(names: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(names))
    known = (*EVAL_SETS, *KNOWLEDGE_SETS)
    return [s for s in known if s in seen] + [s for s in seen if s not in known]


def _ordered_scores(names: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(names))
    return [s for s in _SCORE_ORDER if s in seen] + [s for s in seen if s not in _SCORE_ORDER]
