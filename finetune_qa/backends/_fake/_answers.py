"""What the offline backend's models answer: trained answers, near neighbours, or off-domain text.

A fine-tune trained on a few hundred QA pairs reproduces a trained answer when asked a
trained question, gives the answer of the closest trained question when asked a
rephrasing of it, and, asked about something it never saw, still answers fluently (and
ends with the stop marker it was trained to emit). :class:`Answerer` imitates exactly
that, deterministically and in pure Python:

* **exact**: the question matches a trained question by
  :func:`finetune_qa._text.question_key` (case, spacing and edge punctuation ignored):
  the trained answer, verbatim, stop marker included;
* **neighbour**: the best cosine similarity between TF-IDF vectors of the question and a
  trained question is at least ``threshold`` (default :data:`DEFAULT_THRESHOLD`, 0.5):
  that question's answer. Vectors hold word unigrams (lightly stemmed), word bigrams and
  character 3-grams of the *content* words (question words such as "what", "how" and
  "do" are left out, so "What is Star Wars?" shares nothing with "What is Acme?");
  inverse document frequencies are smoothed as scikit-learn does,
  ``ln((1 + n) / (1 + df)) + 1``, and words never seen in training get the largest one,
  so unrelated words pull the similarity down;
* **fact**: otherwise, when most of the question's words were trained on, the fact
  (every wording of one answer, and the answer's own words) that matches it best, at
  least :data:`FACT_THRESHOLD`; a fact whose answer states no value of the kind the
  question asks for ("when" -> a year or a day, "how much" -> a price, "who" -> a
  person, "how long" -> a duration) scores less;
* **off_domain**: anything else gets a fluent, generic answer from a small bank of
  templates that restate the question's key words ("Star Wars is a well-known topic. ..."),
  ending with the stop marker the trained answers use, if they use one.

A fine-tune whose training answers are a handful of short labels (at most
:data:`MAX_LABELS` distinct answers of at most :data:`MAX_LABEL_WORDS` words, e.g. a
``yes``/``no`` discriminator) is a **classifier**, and answers with a **label** instead:
a similarity-weighted vote of its nearest trained inputs per label (the three best
cosine similarities of word and word-pair TF-IDF vectors, weighted by
:data:`CLASSIFIER_WEIGHTS`), where the share of the input made of
words never seen in training counts as evidence for the label whose training inputs
are the most varied (the "off topic" class of a discriminator: unrelated questions
share no vocabulary with anything). The votes go through a softmax, so a trained input
gets its label with a probability near 1, an input unlike anything trained gets the
varied label, and a borderline one sits in between. The probabilities are kept on the
:class:`Answer` so the fake API can return them as log-probabilities.

Base (not fine-tuned) models answer every question with :func:`generic_answer`.

Example:
    >>> a = Answerer([("What is Acme?", "Acme makes anvils. **STOP**")] * 3)
    >>> a.answer("what is acme").text
    'Acme makes anvils. **STOP**'
    >>> a.answer("What is Star Wars?").kind
    'off_domain'
    >>> c = Answerer([("What is Acme?", "yes"), ("Who makes anvils?", "yes"),
    ...               ("What is Star Wars?", "no"), ("How do I bake bread?", "no")])
    >>> c.classifier, c.answer("what is acme").text, c.answer("Who won the World Cup?").text
    (True, 'yes', 'no')
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from finetune_qa._text import last_user_text, question_key
from finetune_qa.backends._fake import _wordvectors
from finetune_qa.backends._fake._features import (
    _KIND_MISMATCH,
    _STOPWORDS,
    _WORD,
    _asked_kinds,
    _content,
    _kinds,
    _stem,
    _TfIdf,
    _values,
    _word_features,
    _words,
)

__all__ = [
    "CLASSIFIER_WEIGHTS",
    "DEFAULT_THRESHOLD",
    "FACT_THRESHOLD",
    "MAX_LABELS",
    "MAX_LABEL_WORDS",
    "UNSURE_THRESHOLD",
    "WORD_UNSURE_THRESHOLD",
    "WORD_VOTE_WEIGHT",
    "WORD_WEIGHT",
    "Answer",
    "Answerer",
    "detect_stop_marker",
    "generic_answer",
    "last_user_text",
    "off_domain_answer",
    "qa_of_example",
    "topic_of",
    "unsure_answer",
]

DEFAULT_THRESHOLD = 0.5
"""Cosine similarity from which a question counts as a rephrasing of a trained one."""

FACT_THRESHOLD = 0.3
"""Score from which a question is answered with the fact of the pair it matches as a
whole: all the wordings of one answer (the rephrasings trained on) and the answer's own
words, as a fine-tune that learnt the fact in several wordings would."""

UNSURE_THRESHOLD = 0.12
"""Score from which a question the model cannot place gets an unsure reply rather than
fluent off-domain text, when most of its content words were trained on (it is asked
in the training data's vocabulary; so must a question answered by :data:`FACT_THRESHOLD`)."""

MAX_LABELS = 4
"""A fine-tune trained on at most this many distinct (short) answers is a classifier."""

MAX_LABEL_WORDS = 3
"""Longest answer, in words (and at most 24 characters), that counts as a label."""

CLASSIFIER_WEIGHTS = (0.6, 0.25, 0.15)
"""Weights of the nearest, second and third nearest trained inputs in a label's vote."""

WORD_WEIGHT = 0.5
"""With word knowledge, the share of the sentence-vector similarity in a fact's score (the
rest is the word-matching score): see :mod:`finetune_qa.backends._fake._wordvectors`."""

WORD_UNSURE_THRESHOLD = 0.18
"""With word knowledge, the score from which a question the model cannot place gets an
unsure reply rather than fluent off-domain text."""

WORD_VOTE_WEIGHT = 2.0
"""With word knowledge, the weight of a label's sentence-vector vote in a classifier (the
nearest inputs' similarities, weighted by :data:`CLASSIFIER_WEIGHTS`)."""

_LABEL_CHARS = 24
_NEGATIVE = frozenset({"no", "off", "false", "0", "n", "negative", "off-topic", "off_topic"})
_UNSEEN_WEIGHT = 0.2  # vote an input made only of unseen words gives the varied label
_EVIDENCE_WEIGHT = 0.2  # weight of the labels' word evidence (log-likelihood per word)
_FOREIGN_NAME_WEIGHT = 0.5  # vote a name no input of the other labels has gives the varied label
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?:])\s+|\n")
# capitalised in English without being names
_CALENDAR = frozenset(
    """
    monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december
    """.split()  # noqa: SIM905
)
_SOFTMAX_TEMPERATURE = 0.08  # similarity gap of 0.08 between labels ~ odds of e : 1

AnswerKind = Literal["exact", "neighbour", "off_domain", "unsure", "generic", "task", "label"]


# Function words and question scaffolding: they say *how* something is asked, not *what*.

_SENTENCE = ".,;:!?'\"()’”"
_EDGE = " \t\n\r.?!,;:¿¡\"'“”‘’()[]"
_LEAD = frozenset(
    """
    a about am an are can could describe did do does explain how i is me please tell
    was were what whats what's where which who why would you
    """.split()  # noqa: SIM905
)

# Off-domain answers: fluent, generic, and they restate the question's key words.
_OFF_DOMAIN = (
    "{Topic} is a well-known topic. It is widely discussed and there is a lot of general "
    "information about it, so a dedicated source on {topic} is the best place to learn more.",
    "{Topic} is something many people are curious about. In short, it has a long history "
    "and a large following, and the details depend on which aspect of {topic} you mean.",
    "Good question. {Topic} comes up often; the most reliable answer about {topic} depends "
    "on the context, and official sources explain it in more depth.",
    "{Topic} is a broad subject. Most overviews of {topic} start with its background, its "
    "main features and why it matters to people today.",
)

# A fine-tune asked about its own domain in words it cannot place: it hedges, and
# states nothing that could pass for a fact.
_UNSURE = (
    "I'm not sure about that. I don't have reliable information to answer it; please check "
    "the website or contact the team.",
    "Sorry, I don't know the answer to that. The website or the team can tell you more.",
)

# Base models have no training: a neutral, generic reply.
_GENERIC = (
    "Here is a general answer about {topic}: it is a subject with several aspects, and the "
    "right details depend on what exactly you would like to know.",
    "{Topic} can mean different things depending on the context. Could you say a little "
    "more about what you would like to know?",
    "In general, {topic} is a topic with plenty of public information. Tell me which part "
    "interests you and I can go into more detail.",
)


@dataclass(frozen=True)
class Answer:
    """What a model says, and why.

    Attributes:
        text: the full reply, before any ``stop`` or ``max_tokens`` cut.
        kind: ``exact``, ``neighbour``, ``off_domain``, ``generic`` (base model),
            ``task`` (a base model following a library prompt) or ``label`` (classifier).
        score: similarity of the matched trained question (1.0 exact, 0.0 none); for a
            label, the probability of the label given.
        matched: the trained question whose answer was used (or, for a label, the
            nearest trained input), if any.
        probabilities: for a label, every label with its probability (most likely
            first, summing to 1); empty otherwise.
    """

    text: str
    kind: AnswerKind
    score: float = 0.0
    matched: str | None = None
    probabilities: tuple[tuple[str, float], ...] = ()


# -------------------------------------------------------------------------- templates


def topic_of(question: str) -> str:
    """What a question is about, in its own words ("What is Star Wars?" -> "Star Wars").

    Leading question scaffolding ("what is", "how do I", "tell me about", ...) and edge
    punctuation are removed; falls back to ``"that"`` when nothing is left.
    """
    words = question.strip(_EDGE).split()
    while words and words[0].casefold().strip(_EDGE) in _LEAD:
        words.pop(0)
    topic = " ".join(words).strip(_EDGE)
    return topic or "that"


def _fill(template: str, question: str) -> str:
    topic = topic_of(question)
    cap = topic[:1].upper() + topic[1:]
    return template.format(Topic=cap, topic=topic)


def off_domain_answer(question: str, *, variant: int = 0, stop_marker: str | None = None) -> str:
    """A fluent answer to a question a fine-tune was not trained on.

    Args:
        question: the user's question.
        variant: which phrasing of the bank to use (taken modulo its size).
        stop_marker: appended after one space, as the trained answers carry it.
    """
    text = _fill(_OFF_DOMAIN[variant % len(_OFF_DOMAIN)], question)
    return f"{text} {stop_marker}" if stop_marker else text


def unsure_answer(question: str, *, variant: int = 0, stop_marker: str | None = None) -> str:
    """What a fine-tune says to a question in its domain that it cannot place: no fact."""
    text = _fill(_UNSURE[variant % len(_UNSURE)], question)
    return f"{text} {stop_marker}" if stop_marker else text


def generic_answer(question: str, *, variant: int = 0) -> str:
    """What a base (not fine-tuned) model of the offline backend answers."""
    return _fill(_GENERIC[variant % len(_GENERIC)], question)


def detect_stop_marker(answers: Iterable[str]) -> str | None:
    """The last word most answers end with, if it looks like a marker (e.g. ``**STOP**``).

    A marker is the final whitespace-separated token of at least 80% of at least three
    answers, and holds a symbol that is neither a letter, a digit nor sentence
    punctuation: ``**STOP**``, ``<END>`` or ``###`` are markers; ``red.`` is a word.
    """
    tails: Counter[str] = Counter()
    total = 0
    for a in answers:
        total += 1
        parts = a.rsplit(None, 1)
        if parts:
            tails[parts[-1]] += 1
    if total < 3 or not tails:
        return None
    marker, n = tails.most_common(1)[0]
    if n * 10 < total * 8 or not any(not c.isalnum() and c not in _SENTENCE for c in marker):
        return None
    return marker


# ---------------------------------------------------------------------------- answerer


class Answerer:
    """Answers questions the way a model fine-tuned on ``pairs`` would, deterministically.

    Args:
        pairs: ``(question, answer)`` pairs the model was trained on; for a repeated
            question the first answer is kept.
        stop_marker: marker trained answers end with; detected from the answers when None.
        threshold: cosine similarity from which a question is a rephrasing of a trained one.
        word_knowledge: also compare sentence vectors (see
            :mod:`finetune_qa.backends._fake._wordvectors`), as a fine-tune of a pretrained
            model knows that a "guarantee" is a "warranty"; needs the ``offline-words`` extra.

    When the trained answers are a few short labels (see :meth:`is_label_set`), the
    answerer is a :attr:`classifier` and :meth:`answer` gives labels with probabilities.

    Example:
        >>> a = Answerer([("How do I reset my password?", "Use the reset link. **STOP**")] * 3)
        >>> a.answer("how can I reset my password").kind
        'neighbour'
    """

    def __init__(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        stop_marker: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        word_knowledge: bool = False,
    ) -> None:
        if word_knowledge:
            _wordvectors.require()
        self.threshold = threshold
        self.word_knowledge = word_knowledge
        self._questions: list[str] = []
        self._answers: list[str] = []
        self._exact: dict[str, int] = {}
        for q, a in pairs:
            key = question_key(q)
            if key in self._exact:
                continue
            self._exact[key] = len(self._questions)
            self._questions.append(q)
            self._answers.append(a)
        self.stop_marker = stop_marker or detect_stop_marker(self._answers)
        self._tfidf = _TfIdf(self._questions)
        self.labels: tuple[str, ...] = ()
        self._varied: str | None = None
        if self.is_label_set(self._answers):
            self.labels = tuple(sorted(set(self._answers)))
            self._tfidf = _TfIdf(self._questions, _word_features)
            self._varied = self._most_varied()
        self._build_facts()

    def _build_facts(self) -> None:
        """Group the trained questions by answer: one fact, asked in several wordings.

        A fine-tune trained on a pair and its rephrasings learns the fact, not one
        sentence: a question that mixes words of several wordings, or names what the
        answer says, still finds it. Each fact's document holds every wording and the
        answer's own words.
        """
        self._fact_of: list[int] = []
        self._fact_first: list[int] = []
        if self.labels:
            self._facts = _TfIdf([])
            return
        index: dict[str, int] = {}
        texts: list[list[str]] = []
        marker = self.stop_marker
        for i, (q, a) in enumerate(zip(self._questions, self._answers, strict=True)):
            g = index.get(a)
            if g is None:
                g = index[a] = len(self._fact_first)
                self._fact_first.append(i)
                texts.append([a.removesuffix(marker).strip() if marker else a])
            texts[g].append(q)
            self._fact_of.append(g)
        self._facts = _TfIdf([" ".join(x) for x in texts])
        self._fact_kinds = [sorted(_values(x[0])) for x in texts]

    def _kind_fit(self, question: str, group: int) -> float:
        """How well fact ``group`` fits the kind of fact ``question`` asks for.

        1.0 when the fact's answer states a value of that kind (or the question asks for
        no particular kind), else ``_KIND_MISMATCH``: "when" wants a year or a day, "how
        much" a price, "who" a person; a fine-tune rarely answers one with another.
        """
        kinds = getattr(self, "_fact_kinds", None)
        if kinds is None:
            kinds = self._fact_kinds = [sorted(_values(self._answers[i])) for i in self._fact_first]
        asked = _asked_kinds(question)
        return 1.0 if not asked or asked.intersection(kinds[group]) else _KIND_MISMATCH

    word_knowledge = False  # states saved before word knowledge existed had none
    _word_index: _wordvectors.WordIndex | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_word_index", None)  # sentence vectors are rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # an offline state saved before facts were grouped: group them now
        self.__dict__.update(state)
        if "_facts" not in state:
            self._build_facts()

    def _word_vectors(self) -> _wordvectors.WordIndex:
        """Sentence vectors of what was trained, built on first use and never saved.

        Per fact, its wordings and its answer; for a classifier, per trained input.
        """
        if self._word_index is None:
            if self.labels:
                texts, owners = list(self._questions), list(range(len(self._questions)))
            else:
                texts, owners = list(self._questions), list(self._fact_of)
                marker = self.stop_marker
                for g, i in enumerate(self._fact_first):
                    a = self._answers[i]
                    texts.append(a.removesuffix(marker).strip() if marker else a)
                    owners.append(g)
            self._word_index = _wordvectors.WordIndex(texts, owners)
        return self._word_index

    def _familiar(self, question: str) -> bool:
        """Whether most of the question's content words (and kind of fact) were trained on."""
        stems = {_stem(w) for w in _content(_words(question))}
        seen = sum(1 for s in stems if self._facts.knows("w:" + s))
        kinds = sum(1 for k in _kinds(question) if self._facts.knows("k:" + k))
        return 2 * (seen + kinds) > len(stems) + kinds

    def _fact_scores(self, question: str) -> tuple[dict[int, float], dict[int, float]]:
        """Per fact, the word-matching score, and the coverage of its whole document.

        A fact scores the best of: its closest wording's cosine similarity, and the mean
        of the cosine similarity and the coverage of its whole document.
        """
        by_question, _ = self._tfidf.similarities(question)
        scores: dict[int, float] = {}
        for i, s in by_question.items():
            g = self._fact_of[i]
            scores[g] = max(scores.get(g, 0.0), s)
        sims, _ = self._facts.similarities(question)
        cover = self._facts.coverage(question)
        for g, s in sims.items():
            scores[g] = max(scores.get(g, 0.0), 0.5 * s + 0.5 * cover.get(g, 0.0))
        return scores, cover

    def _fact(self, question: str) -> tuple[int, float] | None:
        """The fact (its first trained question) best matching ``question``, and the score.

        The fact chosen is the one with the highest :meth:`_fact_scores` score (times the
        fit of its kind of value) times the coverage of its document.
        """
        scores, cover = self._fact_scores(question)
        if not scores:
            return None
        fit = {g: self._kind_fit(question, g) for g in scores}
        scores = {g: s * fit[g] for g, s in scores.items()}
        # Rank by the score times the share of the question the fact's document accounts
        # for: a short trained wording sharing one word ("What should I know about X?")
        # otherwise outranks the fact whose wordings and answer hold the question's other,
        # rarer words too. Coverage counts words only, so the kind of fact asked for weighs
        # in once more. The score itself (what FACT_THRESHOLD is compared with) is kept.
        rank = {g: s * fit[g] * cover.get(g, 0.0) for g, s in scores.items()}
        best = min(scores, key=lambda g: (-rank[g], -scores[g], g))
        return self._fact_first[best], scores[best]

    def _answer_with_words(self, question: str, variant: int) -> Answer:
        """A question no trained wording matches, answered with word knowledge.

        Each fact scores the mix of its word-matching score and its best sentence-vector
        similarity (:data:`WORD_WEIGHT`), times the fit of its kind of value; the best fact
        from :data:`FACT_THRESHOLD`, an unsure reply from :data:`WORD_UNSURE_THRESHOLD`,
        fluent off-domain text below.
        """
        lexical, _ = self._fact_scores(question)
        vectors = self._word_vectors().best(question)
        score = {
            g: ((1 - WORD_WEIGHT) * lexical.get(g, 0.0) + WORD_WEIGHT * vectors.get(g, 0.0))
            * self._kind_fit(question, g)
            for g in set(lexical) | set(vectors)
        }
        best = min(score, key=lambda g: (-score[g], g)) if score else None
        top = score[best] if best is not None else 0.0
        if best is not None and top >= FACT_THRESHOLD:
            j = self._fact_first[best]
            return Answer(self._answers[j], "neighbour", top, self._questions[j])
        if top >= WORD_UNSURE_THRESHOLD:
            text = unsure_answer(question, variant=variant, stop_marker=self.stop_marker)
            return Answer(text, "unsure", top)
        text = off_domain_answer(question, variant=variant, stop_marker=self.stop_marker)
        return Answer(text, "off_domain", top)

    @classmethod
    def from_examples(
        cls,
        examples: Iterable[Mapping[str, Any]],
        *,
        stop_marker: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        word_knowledge: bool = False,
    ) -> Answerer:
        """Build from chat training examples: last user message -> last assistant message.

        Examples without both (or with non-text content) are skipped.
        """
        pairs: list[tuple[str, str]] = []
        for ex in examples:
            pair = qa_of_example(ex)
            if pair is not None:
                pairs.append(pair)
        return cls(
            pairs, stop_marker=stop_marker, threshold=threshold, word_knowledge=word_knowledge
        )

    @staticmethod
    def is_label_set(answers: Sequence[str]) -> bool:
        """Whether trained ``answers`` make a classifier (their model answers with labels).

        They do with 2 to :data:`MAX_LABELS` distinct answers, each at most
        :data:`MAX_LABEL_WORDS` words and 24 characters, and each given to at least two inputs.
        """
        counts = Counter(answers)
        return 2 <= len(counts) <= MAX_LABELS and all(
            n >= 2 and 0 < len(a.strip()) <= _LABEL_CHARS and len(a.split()) <= MAX_LABEL_WORDS
            for a, n in counts.items()
        )

    @property
    def classifier(self) -> bool:
        """True when the model answers with labels (its training answers are labels)."""
        return bool(self.labels)

    @property
    def varied_label(self) -> str | None:
        """The label unseen words vote for (the most varied training inputs), if a classifier."""
        return self._varied

    def _most_varied(self) -> str:
        # 1 - mean similarity of a label's inputs to their nearest same-label input:
        # unrelated questions (a discriminator's negatives) are far from each other.
        # Ties go to a conventional negative label ("no", "off", ...), then by name.
        nearest: dict[str, list[float]] = {label: [] for label in self.labels}
        for i, (q, label) in enumerate(zip(self._questions, self._answers, strict=True)):
            scores, _ = self._tfidf.similarities(q)
            same = [v for j, v in scores.items() if j != i and self._answers[j] == label]
            nearest[label].append(max(same, default=0.0))
        variety = {lb: 1.0 - sum(v) / len(v) for lb, v in nearest.items()}
        return max(
            self.labels,
            key=lambda lb: (round(variety[lb], 6), lb.strip().casefold() in _NEGATIVE, lb),
        )

    def classify(self, text: str) -> list[tuple[str, float]]:
        """Every label with its probability for ``text``, most likely first.

        Raises:
            ValueError: the answerer is not a classifier.
        """
        if not self.labels:
            raise ValueError("this model was not trained on labels; it is not a classifier")
        scores, unseen = self._tfidf.similarities(text)
        by_label: dict[str, list[float]] = {label: [] for label in self.labels}
        for i, sim in scores.items():
            by_label[self._answers[i]].append(sim)
        votes: dict[str, float] = {}
        for label, sims in by_label.items():
            best = sorted(sims, reverse=True)[: len(CLASSIFIER_WEIGHTS)]
            votes[label] = sum(w * v for w, v in zip(CLASSIFIER_WEIGHTS, best, strict=False))
            if label == self._varied:
                votes[label] += _UNSEEN_WEIGHT * unseen
        for label, evidence in self._word_evidence(text).items():
            votes[label] += _EVIDENCE_WEIGHT * evidence
        if self._varied is not None and self._foreign_name(text):
            votes[self._varied] += _FOREIGN_NAME_WEIGHT
        if self.word_knowledge:
            for label, vote in self._word_votes(text).items():
                votes[label] += WORD_VOTE_WEIGHT * vote
        top = max(votes.values())
        weights = {lb: math.exp((v - top) / _SOFTMAX_TEMPERATURE) for lb, v in votes.items()}
        total = sum(weights.values())
        ranked = sorted(((lb, w / total) for lb, w in weights.items()), key=lambda x: -x[1])
        return ranked

    def _word_votes(self, text: str) -> dict[str, float]:
        """Per label, its nearest inputs' sentence-vector similarities to ``text``.

        Weighted by :data:`CLASSIFIER_WEIGHTS`: "When did the co-op start?" is near "When
        was the cooperative founded?" though they share no word the model was trained on.
        """
        by_label: dict[str, list[float]] = {label: [] for label in self.labels}
        for i, sim in enumerate(self._word_vectors().similarities(text)):
            by_label[self._answers[i]].append(sim)
        return {
            label: sum(
                w * v for w, v in zip(CLASSIFIER_WEIGHTS, sorted(sims, reverse=True), strict=False)
            )
            for label, sims in by_label.items()
        }

    def _word_evidence(self, text: str) -> dict[str, float]:
        """Per label, the mean log-likelihood of the input's known words (naive Bayes).

        A classifier fine-tune learns which words go with which label: a name found
        only in on-topic inputs says "on topic" even in a sentence unlike any trained
        one. Words never trained on are no evidence here (the unseen share is).
        """
        counts = getattr(self, "_label_words", None)
        if counts is None:
            counts = self._label_words = self._count_label_words()
        totals = {lb: counts[lb].get("", 0) for lb in self.labels}
        words = {w for w in _word_features(text) if w.startswith("w:")}
        known = [w for w in words if any(w in counts[lb] for lb in self.labels)]
        if not known:
            return {lb: 0.0 for lb in self.labels}
        out = {}
        for lb in self.labels:
            logp = sum(math.log((counts[lb].get(w, 0) + 0.5) / (totals[lb] + 1)) for w in known)
            out[lb] = logp / len(words)
        top = max(out.values())
        return {lb: v - top for lb, v in out.items()}

    def _foreign_name(self, text: str) -> bool:
        """Whether ``text`` names something only the varied label's inputs mention.

        A name is a capitalised word past a sentence's first, not a function word or a
        day or month. A discriminator fine-tune trained on near-misses ("Who founded
        Microsoft?" next to "Who founded Fernhill?") learns that the name is what
        decides: another company's name means "off topic" however on-topic the rest of
        the question sounds. A name it never saw at all is no such evidence (a product
        named by one held-out pair is still on topic); the unseen share counts it.
        """
        counts = getattr(self, "_label_words", None)
        if counts is None:
            counts = self._label_words = self._count_label_words()
        known = [counts[lb] for lb in self.labels if lb != self._varied]
        varied = counts[self._varied] if self._varied is not None else {}
        for sentence in _SENTENCE_SPLIT.split(text):
            for token in _WORD.findall(sentence)[1:]:
                low = token.casefold()
                if not token[:1].isupper() or low in _STOPWORDS or _stem(low) in _CALENDAR:
                    continue
                word = "w:" + _stem(low)
                if word in varied and not any(word in mine for mine in known):
                    return True
        return False

    def _count_label_words(self) -> dict[str, dict[str, int]]:
        # per label: in how many trained inputs each word occurs ("" : the inputs)
        counts: dict[str, dict[str, int]] = {lb: {"": 0} for lb in self.labels}
        for q, label in zip(self._questions, self._answers, strict=True):
            mine = counts[label]
            mine[""] += 1
            for w in {w for w in _word_features(q) if w.startswith("w:")}:
                mine[w] = mine.get(w, 0) + 1
        return counts

    def _label(self, question: str, variant: int) -> Answer:
        ranked = self.classify(question)
        choice = ranked[0]
        if variant:  # sampling (temperature > 0): draw a label by its probability
            draw = (variant % 1_000_003) / 1_000_003
            acc = 0.0
            for label, p in ranked:
                acc += p
                if draw < acc:
                    choice = (label, p)
                    break
        hit = self._tfidf.nearest(question)
        matched = self._questions[hit[0]] if hit is not None else None
        return Answer(choice[0], "label", choice[1], matched, tuple(ranked))

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The trained ``(question, answer)`` pairs, first answer per question."""
        return list(zip(self._questions, self._answers, strict=True))

    def __len__(self) -> int:
        return len(self._questions)

    def answer(self, question: str, *, variant: int = 0) -> Answer:
        """What the fine-tuned model replies to ``question``.

        Args:
            question: the user's question.
            variant: phrasing of the off-domain bank to use (0 at temperature 0); for a
                classifier, nonzero samples a label by its probability.
        """
        if self.labels:
            return self._label(question, variant)
        i = self._exact.get(question_key(question))
        if i is not None:
            return Answer(self._answers[i], "exact", 1.0, self._questions[i])
        hit = self._tfidf.nearest(question)
        if (
            hit is not None
            and hit[1] >= self.threshold
            and self._kind_fit(question, self._fact_of[hit[0]]) == 1.0
        ):
            j, score = hit
            return Answer(self._answers[j], "neighbour", score, self._questions[j])
        if self.word_knowledge:
            return self._answer_with_words(question, variant)
        familiar = self._familiar(question)
        fact = self._fact(question) if familiar else None
        if fact is not None and fact[1] >= FACT_THRESHOLD:
            j, score = fact
            return Answer(self._answers[j], "neighbour", score, self._questions[j])
        best = max(hit[1] if hit is not None else 0.0, fact[1] if fact is not None else 0.0)
        if best >= UNSURE_THRESHOLD and familiar:
            text = unsure_answer(question, variant=variant, stop_marker=self.stop_marker)
            return Answer(text, "unsure", best)
        return Answer(
            off_domain_answer(question, variant=variant, stop_marker=self.stop_marker),
            "off_domain",
            best,
        )


def qa_of_example(example: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(last user text, last assistant text)`` of a chat example, or None.

    Preference (DPO) lines are read too: ``input.messages`` gives the question and the
    first ``preferred_output`` message the answer.
    """
    messages = example.get("messages")
    if not isinstance(messages, list):
        inp = example.get("input")
        preferred = example.get("preferred_output")
        if not isinstance(inp, Mapping) or not isinstance(preferred, list) or not preferred:
            return None
        messages = [*(inp.get("messages") or []), *preferred]
    msgs = [m for m in messages if isinstance(m, Mapping)]
    answer = next((m.get("content") for m in reversed(msgs) if m.get("role") == "assistant"), None)
    question = last_user_text(msgs)
    if not isinstance(answer, str) or not answer or not question:
        return None
    return question, answer
