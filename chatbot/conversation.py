"""Follow-up resolution: turn "How many GPUs does it house?" into a query that names its subject.

The rules are deterministic and explainable. A question is a *follow-up* when it
refers back (a pronoun such as "it"/"they"/"он"/"это", an anaphoric "that"/"this",
an ellipsis such as "And when?", "What about X?", "What else ...", "А ...") or is
short and has no subject of its own. A follow-up is searched for together with
the subject terms of the most recent earlier question (itself resolved first, so
chains of follow-ups keep their subject) and, in a live session, the bot's last
answer. Any other question is a topic change and is searched for as typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN

# Pronouns that point at something said earlier.
_PRONOUNS = frozenset(
    "it its it's itself they them their theirs themselves he him his himself she her hers herself there "
    "он она оно они его её ее их ему ей им него неё нее них нём нем ней ними им там тогда".split()
)
# Demonstratives: anaphoric when they open the question or follow a preposition/verb
# ("How much of that ...", "Who did this?"), not as a relative "that" ("the firm that ...").
_DEMONSTRATIVES = frozenset("this that these это этот эта эти этого этой этим этому этих".split())
_BEFORE_DEMONSTRATIVE = frozenset(
    "of about after before for from in on with without to by at like than is are was were do does did "
    "has have had will would can could about о об после до для от в во на с со к по за у из про и а".split()
)
# "there" followed by these is existential ("Are there ...", "there were"), not "in that place".
_EXISTENTIAL = frozenset("is are was were be been will have has had".split())
# Openings that continue the previous turn ("And when?", "What about Oracle?", "А сколько ...").
_ELLIPSIS = re.compile(
    r"^\s*(?:and|also|so|then|what about|how about|what else|who else|which else|anything else|"
    r"а|и|ну|а что|что ещё|что еще|кто ещё|кто еще|ещё|еще)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[\w$%][\w$%'’.-]*\w|[\w$%]")
# Words that never make a subject: function words, question words, generic verbs.
_FUNCTION_WORDS = (
    frozenset(STOPWORDS_EN_PLUS)
    | frozenset(STOPWORDS_RUSSIAN)
    | _PRONOUNS
    | _DEMONSTRATIVES
    | frozenset(
        "else much many old also called call named name does did do mentioned according article "
        "сколько какой какая какое какие каком какую каких почему зачем ещё еще также называется "
        "называли называют чей чья чьё чьи ли же".split()
    )
)
# A question with at most this many content words and no named entity lacks a subject.
SHORT_QUESTION_WORDS = 2
# At most this many context terms are added, so the user's own words still dominate retrieval.
MAX_CONTEXT_TERMS = 8
# Longer "words" (a pasted blob, a hostile history) are no subject and are never added to the query.
MAX_TERM_CHARS = 40


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _key(word: str) -> str:
    return word.lower().replace("ё", "е").rstrip(".'’")


def _is_entity(word: str) -> bool:
    """A name-like token: has a capital letter (xAI, Memphis, GPU, Маск) or a digit, and is no function word."""
    return (any(c.isupper() for c in word) or any(c.isdigit() for c in word)) and _key(word) not in _FUNCTION_WORDS


def _is_name(word: str) -> bool:
    """A proper name (Musk, OpenAI, xAI), not an acronym used as a noun (AI, GPUs, CEO)."""
    return _is_entity(word) and any(c.isupper() for c in word) and not word.removesuffix("s").isupper()


def subject_terms(question: str) -> list[str]:
    """The question's own subject: named entities first, then other content words, in order, deduplicated."""
    words = [w.rstrip(".'’") for w in _words(question)]
    content = [w for w in words if _key(w) not in _FUNCTION_WORDS and (len(w) > 1 or w.isupper())]
    ordered = [w for w in content if _is_entity(w)] + [w for w in content if not _is_entity(w)]
    seen, terms = set(), []
    for w in ordered:
        if _key(w) not in seen:
            seen.add(_key(w))
            terms.append(w)
    return terms


def is_followup(question: str) -> bool:
    """True when ``question`` refers back to earlier turns instead of naming its own subject."""
    if _ELLIPSIS.match(question):
        return True
    words = _words(question)
    keys = [_key(w) for w in words]
    for i, k in enumerate(keys):
        after = keys[i + 1] if i + 1 < len(keys) else ""
        # A pronoun after a name in the same question refers to that name ("Which OpenAI product keeps its lead?").
        named_before = any(_is_name(w) for w in words[:i])
        if k in _PRONOUNS and not named_before and not (k == "there" and after in _EXISTENTIAL):
            return True
        if k in _DEMONSTRATIVES and (i <= 1 or keys[i - 1] in _BEFORE_DEMONSTRATIVE):
            return True
    terms = subject_terms(question)
    return not any(_is_entity(t) for t in terms) and len(terms) <= SHORT_QUESTION_WORDS


def resolve_followup(question: str, history: list[str], answers: list[str] | None = None) -> str:
    """The query to search for: ``question`` itself, or a follow-up plus the earlier subject.

    ``history`` holds the earlier user questions, oldest first; ``answers`` the bot's
    answers to them (same order, ``None``/empty for "not found"), when known.
    """
    question = question.strip()
    if not history or not is_followup(question):
        return question
    previous = resolve_followup(history[-1], history[:-1], answers[:-1] if answers else None)
    last_answer = answers[-1] if answers and len(answers) == len(history) and answers[-1] else ""
    own = {_key(w) for w in _words(question)}
    context = []
    for term in subject_terms(last_answer) + subject_terms(previous):
        if _key(term) not in own and len(term) <= MAX_TERM_CHARS:
            own.add(_key(term))
            context.append(term)
    if not context:
        return question
    return f"{question} ({' '.join(context[:MAX_CONTEXT_TERMS])})"


@dataclass
class Conversation:
    """One live chat session: the user's questions and the bot's answers so far."""

    questions: list[str] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    max_turns: int = 10

    def resolve(self, question: str) -> str:
        """What a new ``question`` would be searched for, given the turns so far."""
        return resolve_followup(question, self.questions, [a or "" for a in self.answers])

    def add(self, question: str, answer: str | None) -> None:
        """Record a finished turn; only the last ``max_turns`` turns are kept."""
        self.questions = [*self.questions, question][-self.max_turns :]
        self.answers = [*self.answers, answer][-self.max_turns :]

    def ask(self, bot, question: str, k: int = 5):
        """Ask ``bot`` (a :class:`chatbot.pipeline.Chatbot`) with this history, and record the turn."""
        answer = bot.ask(question, history=self.questions, k=k, answers=[a or "" for a in self.answers])
        self.add(question, answer.text)
        return answer

    def reset(self) -> None:
        self.questions, self.answers = [], []
