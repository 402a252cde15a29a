"""The discriminator's built-in negatives: a bank of varied off-topic questions."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from finetune_qa._text import key_hash, question_key

__all__ = [
    "NEAR_MISS_QUESTIONS",
    "OFF_TOPIC_TRAINING_QUESTIONS",
    "OTHER_COMPANIES",
    "company_name",
    "company_swaps",
]

_NAME = re.compile(r"[A-Z][\w'-]*[a-z][\w'-]*")
_EDGE = " \t.,;:!?\"'()[]“”‘’"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# The discriminator's negatives. finetune_qa.evaluation has its own, separate bank of
# unrelated questions for evaluation suites, so a guard is never scored on its training data.
OFF_TOPIC_TRAINING_QUESTIONS: tuple[str, ...] = (
    # pop culture
    "Who wrote the Odyssey?",
    "Who directed the movie Jaws?",
    "How many Harry Potter books are there?",
    "Who is the lead singer of Coldplay?",
    "What is the plot of The Lord of the Rings?",
    "Which actor played Iron Man?",
    "When did the Beatles break up?",
    "What is the most watched series on Netflix?",
    "Who won the Eurovision Song Contest in 1974?",
    "What is anime?",
    # history and geography
    "When did the Roman Empire fall?",
    "Who was the first president of the United States?",
    "What is the largest desert on Earth?",
    "How deep is the Mariana Trench?",
    "Which river flows through Cairo?",
    "Why did the Titanic sink?",
    "What was the Cold War?",
    "How tall is Mount Kilimanjaro?",
    "Which countries border Switzerland?",
    "Who built the pyramids of Giza?",
    # science and nature
    "How do I descale a kettle?",
    "How do black holes form?",
    "How do magnets work?",
    "How far away is the Moon?",
    "At what temperature does water boil on a mountain?",
    "How do vaccines train the immune system?",
    "Why do dogs wag their tails?",
    "What causes earthquakes?",
    "How many teeth does an adult have?",
    "What is quantum entanglement?",
    # cooking and food
    "How do I make sourdough bread?",
    "How do I make risotto?",
    "How do I poach an egg?",
    "What is a good recipe for lasagne?",
    "Which wine goes with salmon?",
    "How do you make guacamole?",
    "Is olive oil good for frying?",
    "What spices are in garam masala?",
    # sport
    "Who won the last football World Cup?",
    "How many players are on a basketball team?",
    "What are the rules of cricket?",
    "Who holds the marathon world record?",
    "When are the next Olympic Games?",
    "How does scoring work in tennis?",
    "Which team has won the most Tour de France stages?",
    # travel
    "What should I see in Rome in three days?",
    "Do I need a visa to visit Japan?",
    "What is the cheapest time to fly to New York?",
    "Which Greek island has the best beaches?",
    "How do I get from the airport to central London?",
    "Is it safe to travel to Iceland in winter?",
    # code and computing
    "How do I read a CSV file in R?",
    "What is the difference between TCP and UDP?",
    "How do I exit vim?",
    "What does a Kubernetes pod do?",
    "What is a JavaScript closure?",
    "What is a segmentation fault?",
    "Which is faster, Rust or Go?",
    "How do I undo the last git commit?",
    # finance and economics
    "Should I buy Bitcoin?",
    "What is inflation?",
    "How do index funds work?",
    "What is a good credit score?",
    "How are mortgage interest rates set?",
    "What is the stock price of Tesla?",
    # health
    "How much water should I drink a day?",
    "What are the symptoms of the flu?",
    "How can I sleep better?",
    "Is coffee bad for your heart?",
    "How many calories does running burn?",
    "What is a normal resting heart rate?",
    # everyday life, language, misc
    "How do I remove a red wine stain?",
    "What is stoicism?",
    "Tell me a joke about penguins.",
    "Write a poem about autumn leaves.",
    "How do I train my puppy to sit?",
    "What is the weather like in Paris tomorrow?",
    "How do you say thank you in Japanese?",
    "What rhymes with orange?",
    "How do I jump-start a car battery?",
    "What is the tallest building in the world?",
    "How many legs does a spider have?",
    "Who designed the Eiffel Tower?",
    "Can you recommend a good science fiction novel?",
    "What is the best way to learn the guitar?",
    "When should I plant garlic?",
    "Why do we dream?",
    "What time is it in Sydney?",
    "Translate hello into Spanish.",
    "What is the difference between a crocodile and an alligator?",
    "How do I knit a scarf?",
    "What is the population of Brazil?",
    "Who painted The Starry Night?",
    "How do hot air balloons fly?",
    "What is chess notation?",
    "How do I write a cover letter?",
    "Which planet has the most moons?",
)
"""Varied off-topic questions (trivia, pop culture, science, cooking, sport, travel, code,
finance, health, everyday life): the discriminator's built-in negatives. Separate from
the unrelated questions of :mod:`finetune_qa.evaluation`, which are for scoring."""


# Near-misses: questions a company's bot must refuse although they sound like its own.
NEAR_MISS_QUESTIONS: tuple[str, ...] = (
    # the same kinds of question about other companies
    "Who founded Apple?",
    "How many people work at Amazon?",
    "Where is IKEA based?",
    "How much does Spotify Premium cost?",
    "What are the opening hours of the Louvre?",
    "Does Tesla offer a warranty on its batteries?",
    "How do I cancel my Amazon Prime membership?",
    "Who is the CEO of Unilever?",
    "When was Airbnb started?",
    "What is the refund policy of Ryanair?",
    "Does Decathlon repair bikes?",
    "How long does shipping from Zalando take?",
    "Is there a student discount at Adobe?",
    "Where are the data centres of Dropbox?",
    "How many members does the REI cooperative have?",
    "Can I pay Uber rides in cash?",
    "What plans does Slack offer?",
    "How do I contact Samsung support?",
    # general questions in the domains a company site covers
    "What is a cooperative?",
    "How does a B Corporation differ from a normal company?",
    "How do I write a business plan?",
    "What is the average salary of a software developer?",
    "How much should a website cost?",
    "What is the best project management method?",
    "How often should I service my car?",
    "What does GDPR require from companies?",
    "How do I choose a good accountant?",
    "What is a fair hourly rate for a freelancer?",
    "How do I negotiate a pay rise?",
    "What is venture capital?",
    "How do I start my own company?",
    "Which bank has the lowest fees?",
)
"""General questions in a company site's domains, and the same kinds of question about
other companies: the near-misses a gate must refuse although they sound on topic.
:func:`company_swaps` adds the site's own questions with another company's name."""

OTHER_COMPANIES: tuple[str, ...] = (
    "Microsoft",
    "Google",
    "Amazon",
    "Apple",
    "IKEA",
    "Netflix",
    "Spotify",
    "Tesla",
    "Siemens",
    "Deloitte",
    "Nike",
    "Samsung",
    "Airbnb",
    "Decathlon",
    "Accenture",
    "Unilever",
)
"""Companies whose names :func:`company_swaps` puts in place of the site's own."""


def company_name(questions: Iterable[str]) -> str | None:
    """The name the questions are about, if at least two questions use it.

    The capitalised word that the most questions use, not counting a sentence's first
    word: "Thanks" in "Where is Acme based? Thanks." (a rephrasing's frame) is no name.

    Example:
        >>> company_name(["Who founded Acme?", "Where is Acme based?", "What is a plan?"])
        'Acme'
    """
    counts: Counter[str] = Counter()
    for q in questions:
        words: set[str] = set()
        for sentence in _SENTENCE_END.split(q):
            words.update(w.strip(_EDGE) for w in sentence.split()[1:])
        counts.update(w for w in words if _NAME.fullmatch(w))
    if not counts:
        return None
    name, hits = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return name if hits >= 2 else None


def company_swaps(questions: Iterable[str], name: str) -> list[str]:
    """The questions that name ``name``, with another company's name instead (one each).

    Example:
        >>> company_swaps(["Who founded Acme?", "What is a plan?"], "Acme")
        ['Who founded Deloitte?']
    """
    word = re.compile(rf"(?<![\w./@]){re.escape(name)}(?![\w@]|\.\w)", re.IGNORECASE)
    out: list[str] = []
    for q in questions:
        if word.search(q):
            other = OTHER_COMPANIES[key_hash(question_key(q)) % len(OTHER_COMPANIES)]
            out.append(word.sub(other, q))
    return out
