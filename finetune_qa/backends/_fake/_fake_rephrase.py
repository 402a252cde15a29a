"""Offline base-model behaviour for the augmentation prompt: rephrasings by rules.

:mod:`finetune_qa.rephrase` asks a writer model for K rephrasings of each training
question. Its system message holds :data:`REPHRASE_TASK_PHRASE` (duplicated from
``rephrase.py``, because backends sit below it; a test keeps the copies equal); the user
message holds ``Rephrasings wanted: K`` and ``Question: ...``; the reply is a numbered
list, one rephrasing per line.

Unlike the evaluation paraphrases of :mod:`._fake_eval` (which keep the content words,
so a lookup still finds the source question), these change what a real writer changes:
the question's *form* ("Who founded X?" -> "Which people set up X?", "X was founded by
whom?") and its *words* (a lexicon of everyday synonyms: founded/started/established,
cost/price/charge, staff/employees/team). Names, numbers and the words outside the
lexicon are kept, so the meaning stays. Deterministic: the same question and K give the
same list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from finetune_qa._text import key_hash, last_user_text, question_key

__all__ = ["REPHRASE_TASK_PHRASE", "answer", "rephrasings"]

REPHRASE_TASK_PHRASE = "rephrase questions for fine-tuning data"
"""Identifies the augmentation prompt; equal to ``rephrase.REPHRASE_TASK_PHRASE``."""

_WANTED = re.compile(r"Rephrasings wanted:\s*([0-9]{1,3})", re.IGNORECASE)
_QUESTION = re.compile(r"Question:\s*(.+)", re.IGNORECASE | re.DOTALL)

_FOUND = r"(?:founded|started|established|created|set up|launched)"
# Question forms and other ways to ask the same: {x} (and {y}) are the captured parts.
_FORMS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(p, re.IGNORECASE), alts)
    for p, alts in (
        (
            rf"^who {_FOUND} (?P<x>.+)$",
            (
                "Who started {x}",
                "Which people set up {x}",
                "{X} was founded by whom",
                "Who are the founders of {x}",
                "Who established {x}",
            ),
        ),
        (
            rf"^(?:when|what year) (?:was|were|did) (?P<x>.+?) (?:get )?{_FOUND}$",
            (
                "What year was {x} started",
                "Since when has {x} existed",
                "When did {x} begin",
                "How long has {x} been around",
            ),
        ),
        (
            r"^how many (?P<y>people|employees|staff|consultants|engineers|members)"
            r" (?:work|are employed|are there) (?:at|for|in) (?P<x>.+)$",
            (
                "How many employees does {x} have",
                "How big is the team at {x}",
                "What is the headcount of {x}",
                "How large is the staff of {x}",
            ),
        ),
        (
            r"^how many (?P<y>.+?) (?:does|do) (?P<x>.+?) have$",
            (
                "What is the number of {y} at {x}",
                "How many {y} are there at {x}",
                "Tell me how many {y} {x} has.",
            ),
        ),
        (
            r"^(?:how much (?:does|do|will|would) (?P<x>.+?) cost|what does (?P<x2>.+?) cost"
            r"|what is the (?:price|cost) of (?P<x3>.+)|how much is (?P<x4>.+))$",
            (
                "What is the price of {x}",
                "What do you charge for {x}",
                "How expensive is {x}",
                "What does {x} cost",
                "How much do I pay for {x}",
            ),
        ),
        (
            r"^where (?:is|are) (?P<x>.+?)(?: (?:based|located|headquartered))?$",
            (
                "Where is {x} located",
                "In which city is {x}",
                "What is the address of {x}",
                "What is the location of {x}",
                "Where can I find {x}",
            ),
        ),
        (
            r"^how long (?:does|do|will|would) (?P<x>.+?) (?:take|last)$",
            (
                "How much time does {x} take",
                "What is the duration of {x}",
                "How long is {x}",
                "How quickly is {x} done",
            ),
        ),
        (
            r"^(?:does|do) (?P<x>.+?) (?:offer|provide|have|give) (?P<y>.+)$",
            (
                "Is {y} available from {x}",
                "Can I get {y} from {x}",
                "Is there {y} at {x}",
                "Does {x} provide {y}",
            ),
        ),
        (
            r"^how (?:do|can) i (?P<x>.+)$",
            (
                "What is the way to {x}",
                "What steps do I take to {x}",
                "How would I {x}",
                "Is there a way to {x}",
            ),
        ),
        (
            r"^can i (?P<x>.+)$",
            ("Is it possible to {x}", "Am I able to {x}", "Could I {x}", "Is it allowed to {x}"),
        ),
        (
            r"^what (?:is|are) (?P<x>.+)$",
            (
                "Can you describe {x}",
                "Tell me about {x}.",
                "Could you explain {x}",
                "Describe {x}.",
            ),
        ),
        (
            r"^who (?:is|are) (?P<x>.+)$",
            ("Which person is {x}", "Tell me who {x} is.", "Who serves as {x}", "Name {x}."),
        ),
    )
)

# Everyday synonyms, both ways where they fit: a writer model swaps words like these.
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("founded", "started", "established", "set up"),
    ("founders", "people who started it"),
    ("employees", "staff", "team members", "people"),
    ("staff", "employees", "team"),
    ("team", "staff", "people"),
    ("cost", "price", "charge"),
    ("costs", "prices", "charges"),
    ("price", "cost", "rate"),
    ("prices", "rates", "fees"),
    ("fee", "charge", "price"),
    ("fees", "charges", "prices"),
    ("based", "located"),
    ("located", "based"),
    ("office", "premises"),
    ("offices", "locations"),
    ("offer", "provide"),
    ("offers", "provides"),
    ("provide", "offer"),
    ("customers", "clients"),
    ("clients", "customers"),
    ("client", "customer"),
    ("customer", "client"),
    ("help", "support", "assist"),
    ("support", "help"),
    ("discount", "reduction", "lower price"),
    ("discounts", "reductions", "lower prices"),
    ("refund", "money back"),
    ("cancel", "call off", "stop"),
    ("book", "schedule", "reserve"),
    ("contact", "reach", "get in touch with"),
    ("hours", "opening times"),
    ("open", "available"),
    ("start", "begin"),
    ("begin", "start"),
    ("finish", "end", "complete"),
    ("buy", "purchase", "order"),
    ("get", "receive", "obtain"),
    ("need", "require"),
    ("make", "create", "build"),
    ("work", "job"),
    ("job", "role", "position"),
    ("jobs", "roles", "positions", "openings"),
    ("hire", "recruit", "take on"),
    ("hiring", "recruiting"),
    ("apply", "send an application"),
    ("salary", "pay"),
    ("benefits", "perks"),
    ("holiday", "vacation", "time off"),
    ("projects", "engagements", "assignments"),
    ("project", "engagement", "assignment"),
    ("services", "offerings"),
    ("service", "offering"),
    ("company", "firm", "business"),
    ("firm", "company"),
    ("business", "company"),
    ("small", "little"),
    ("large", "big"),
    ("big", "large"),
    ("fast", "quick"),
    ("quickly", "fast"),
    ("long", "much time"),
    ("usually", "typically", "normally"),
    ("typical", "usual"),
    ("free", "at no cost"),
    ("cheap", "inexpensive"),
    ("policy", "rule", "terms"),
    ("rules", "policy", "terms"),
    ("payment", "paying"),
    ("pay", "settle"),
    ("invoice", "bill"),
    ("invoices", "bills"),
    ("delivery", "shipping"),
    ("shipping", "delivery"),
    ("return", "send back"),
    ("warranty", "guarantee"),
    ("guarantee", "warranty"),
    ("location", "address"),
    ("address", "location"),
    ("phone", "telephone"),
    ("email", "e-mail"),
    ("remote", "from home"),
    ("meeting", "call"),
    ("training", "courses"),
    ("experience", "background"),
    ("owner", "proprietor"),
    ("owns", "holds"),
    ("ownership", "rights"),
    ("includes", "covers", "contains"),
    ("include", "cover", "contain"),
    ("allowed", "permitted"),
    ("possible", "allowed"),
    ("minimum", "least"),
    ("maximum", "most"),
    ("daily", "per day"),
    ("monthly", "per month", "each month"),
    ("yearly", "annual", "per year"),
    ("week", "7 days"),
    # more everyday words a writer model swaps: repairs and services
    ("repair", "fix", "mend"),
    ("repairs", "fixes"),
    ("repaired", "fixed", "mended"),
    ("fix", "repair", "sort out"),
    ("broken", "damaged", "faulty"),
    ("replace", "swap", "change"),
    ("check", "inspect", "look at"),
    ("closed", "shut"),
    ("close", "shut"),
    ("opening", "open"),
    # time and scheduling
    ("begins", "starts"),
    ("starts", "begins"),
    ("ends", "finishes"),
    ("appointment", "booking", "slot"),
    ("booking", "appointment", "reservation"),
    ("bookings", "appointments", "reservations"),
    ("schedule", "timetable"),
    ("deadline", "due date"),
    ("weekend", "Saturday and Sunday"),
    ("today", "this day"),
    ("soon", "quickly"),
    ("take", "last"),
    ("wait", "queue"),
    ("late", "overdue"),
    ("ready", "done", "finished"),
    ("collect", "pick up"),
    ("keep", "store", "hold"),
    ("stored", "kept", "held"),
    ("data", "information"),
    ("information", "details", "info"),
    ("details", "information"),
    # people and organisations
    ("member", "subscriber"),
    ("members", "subscribers"),
    ("membership", "subscription"),
    ("join", "sign up", "become a member"),
    ("workers", "employees", "staff"),
    ("participants", "attendees", "people"),
    ("students", "pupils", "learners"),
    ("course", "class", "lesson"),
    ("courses", "classes", "lessons"),
    ("class", "course", "lesson"),
    ("workshop", "session"),
    ("founder", "person who started it"),
    ("boss", "manager", "head"),
    ("manager", "head", "boss"),
    ("charity", "nonprofit", "non-profit"),
    ("charities", "nonprofits", "non-profits"),
    ("nonprofit", "charity"),
    ("cooperative", "co-operative"),
    ("shop", "store"),
    ("store", "shop"),
    # money
    ("cheaper", "less expensive", "lower priced"),
    ("expensive", "costly", "pricey"),
    ("refunds", "reimbursements"),
    ("reimbursed", "refunded", "paid back"),
    ("paid", "settled"),
    ("charged", "billed"),
    ("bill", "invoice"),
    ("tax", "VAT"),
    ("card", "credit card"),
    ("cash", "coins and notes"),
    ("subscription", "plan"),
    ("plan", "subscription", "package"),
    ("plans", "subscriptions", "packages"),
    ("trial", "test period"),
    ("upgrade", "move up"),
    ("downgrade", "move down"),
    # actions and states
    ("use", "work with"),
    ("change", "modify", "alter"),
    ("send", "mail"),
    ("receive", "get"),
    ("show", "display"),
    ("find", "locate"),
    ("choose", "pick", "select"),
    ("delete", "remove", "erase"),
    ("reset", "restore"),
    ("install", "set up"),
    ("installed", "set up"),
    ("download", "get"),
    ("share", "split"),
    ("allow", "let", "permit"),
    ("requires", "needs"),
    ("required", "needed", "necessary"),
    ("available", "on offer"),
    ("accept", "take"),
    ("accepts", "takes"),
    ("happens", "occurs"),
    ("problem", "issue"),
    ("problems", "issues"),
    ("question", "query"),
    ("questions", "queries"),
    ("answer", "reply"),
    ("size", "scale"),
    ("number", "count"),
    ("several", "multiple"),
    ("enough", "sufficient"),
    ("main", "primary"),
    ("new", "fresh"),
    ("old", "former"),
    ("complete", "full"),
    ("full", "complete"),
    ("limit", "cap", "maximum"),
    ("secure", "safe"),
    ("safe", "secure"),
)
_SYNONYMS: dict[str, tuple[str, ...]] = {}
for _group in _GROUPS:
    _SYNONYMS.setdefault(_group[0], _group[1:])
_SYN_RE = re.compile(r"\b(" + "|".join(sorted(_SYNONYMS, key=len, reverse=True)) + r")\b")

# Frames around a question, for the last wordings when the forms run out.
_FRAMES = ("Could you tell me {low}?", "I would like to know {low}.", "{cap}? Thanks.")

_OPENERS = frozenset(
    """
    what how is are can could do does did which who where when why will would should may
    tell am was were has have in since describe name
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def answer(messages: Sequence[Mapping[str, Any]], variant: int = 0) -> str | None:
    """The reply to the augmentation prompt, or None when ``messages`` is not one."""
    instructions = " ".join(
        str(m.get("content", ""))
        for m in messages
        if m.get("role") in ("system", "developer") and isinstance(m.get("content"), str)
    )
    if REPHRASE_TASK_PHRASE not in instructions:
        return None
    user = last_user_text(messages)
    found = _QUESTION.search(user)
    if found is None or not found.group(1).strip():
        return "Please give me a question to rephrase."
    wanted = _WANTED.search(user)
    n = max(1, min(int(wanted.group(1)), 20)) if wanted else 1
    items = rephrasings(found.group(1).strip().splitlines()[0], n, variant)
    return "\n".join(f"{i}. {text}" for i, text in enumerate(items, 1))


def rephrasings(question: str, n: int, variant: int = 0) -> list[str]:
    """Up to ``n`` distinct rephrasings of ``question``: other forms, other words.

    Example:
        >>> rephrasings("Who founded Lumenfield?", 3)
        ['Who started Lumenfield?', 'Which people set up Lumenfield?', 'Lumenfield was founded by whom?']
    """  # noqa: E501
    core = " ".join(question.split()).rstrip(" ?!.")
    h = key_hash(question_key(question)) + variant
    forms = _forms(core)
    seen = {question_key(core)}
    out: list[str] = []
    candidates: list[str] = []
    for i, form in enumerate(forms):
        candidates.append(form)
        if i % 2:  # every other form also swaps a word
            candidates.append(_swap(form, h + i, skip_first=True))
    for k in range(4):
        candidates.append(_swap(core, h + k, count=1 + k % 2))
    for k, frame in enumerate(_FRAMES):
        base = _swap(core, h + 7 + k) if k else core
        candidates.append(frame.format(low=_lower_first(base), cap=_cap(base)))
    for text in candidates:
        text = text.strip()
        if not text.endswith(("?", ".")):
            text += "?"
        key = question_key(text)
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(_cap(text))
        if len(out) >= n:
            break
    return out


def _forms(core: str) -> list[str]:
    for pattern, alts in _FORMS:
        m = pattern.match(core)
        if m is None:
            continue
        groups = {k: v for k, v in m.groupdict().items() if v}
        x = next((groups[k] for k in ("x", "x2", "x3", "x4") if k in groups), "")
        y = groups.get("y", "")
        return [alt.format(x=x, X=_cap(x), y=y) for alt in alts]
    return []


def _swap(text: str, seed: int, *, count: int = 2, skip_first: bool = False) -> str:
    """``text`` with up to ``count`` lexicon words replaced by a synonym chosen by ``seed``."""
    done = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal done
        word = m.group(1)
        if done >= count or (skip_first and m.start() == 0):
            return word
        done += 1
        alts = _SYNONYMS[word]
        return alts[(seed + done) % len(alts)]

    return _SYN_RE.sub(repl, text)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    first, _, rest = text.partition(" ")
    if first.casefold() in _OPENERS:
        first = first.lower()
    return f"{first} {rest}" if rest else first
