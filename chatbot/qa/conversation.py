"""Follow-up resolution: turn "How many GPUs does it house?" into a query that names its subject.

The rules are deterministic and explainable. A question is a *follow-up* when it
refers back (a pronoun such as "it"/"they"/"он"/"это", an anaphoric "that"/"this",
an ellipsis such as "And when?", "What about X?", "What else ...", "А ...") or is
short and has no subject of its own. Case counts: an acronym in capitals (IT, US,
AI) is a name, not a pronoun, and a possessive after a noun of the same question
("Which company moved its headquarters?") refers to that noun. A follow-up is
searched for together with the subject of the turn before: the bot's last answer
when it names something (not an amount or a date) with the names of the earlier
question, else all the subject terms of the earlier question (itself resolved
first, so chains of follow-ups keep their subject). A follow-up with nothing to
refer back to is not searched: :func:`clarification` asks what it means. Any
other question is a topic change and is searched for as typed.
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
# Possessives and reflexives: bound to a noun named before them in the same question ("Which company moved
# its headquarters?", "the chatbot maker keeps its servers"), when there is one.
_POSSESSIVES = frozenset("its itself their theirs themselves his himself her hers herself его её ее их".split())
# Words that open a noun phrase: "which company", "the chatbot maker".
_DETERMINERS = frozenset("the a an which what whose this that these those какой какая какое какие каком".split())
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
# An answer holding a number is an amount or a date, not something a pronoun can point at.
_AMOUNT = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|trillion|"
    r"тысяч\w*|миллион\w*|миллиард\w*|триллион\w*)\b",
    re.IGNORECASE,
)
# A question with at most this many content words and no named entity lacks a subject, when it is a
# fragment ("At what valuation?": no verb) or says "the" ("Who is the CEO?"); "What is inflation?" is whole.
SHORT_QUESTION_WORDS = 2
_VERBS = frozenset("is are was were be been do does did has have had can could will would should may might".split())
# At most this many context terms are added, so the user's own words still dominate retrieval.
MAX_CONTEXT_TERMS = 8
# Longer "words" (a pasted blob, a hostile history) are no subject and are never added to the query.
MAX_TERM_CHARS = 40


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _key(word: str) -> str:
    return word.lower().replace("ё", "е").rstrip(".'’")


def _is_acronym(word: str) -> bool:
    """Capitals such as IT, US, AI: a name even when its lower case is a pronoun or a stop word."""
    return len(word) > 1 and word.isupper()


def _is_function_word(word: str) -> bool:
    return _key(word) in _FUNCTION_WORDS and not _is_acronym(word)


def _is_entity(word: str) -> bool:
    """A name-like token: has a capital letter (xAI, Memphis, GPU, Маск) or a digit, and is no function word."""
    return (any(c.isupper() for c in word) or any(c.isdigit() for c in word)) and not _is_function_word(word)


def _is_name(word: str) -> bool:
    """A proper name (Musk, OpenAI, xAI), not an acronym used as a noun (AI, GPUs, CEO)."""
    return _is_entity(word) and any(c.isupper() for c in word) and not word.removesuffix("s").isupper()


def _cased_words(question: str) -> list[str]:
    """The question's words; a question typed all in capitals is read as if in lower case."""
    words = _words(question)
    letters = [c for w in words for c in w if c.isalpha()]
    shouting = len(letters) > 8 and sum(c.isupper() for c in letters) > 0.8 * len(letters)
    return [w.lower() for w in words] if shouting else words


def subject_terms(question: str) -> list[str]:
    """The question's own subject: named entities first, then other content words, in order, deduplicated."""
    words = [w.rstrip(".'’") for w in _words(question)]
    content = [w for w in words if not _is_function_word(w) and (len(w) > 1 or w.isupper())]
    ordered = [w for w in content if _is_entity(w)] + [w for w in content if not _is_entity(w)]
    seen, terms = set(), []
    for w in ordered:
        if _key(w) not in seen:
            seen.add(_key(w))
            terms.append(w)
    return terms


def referring_word(question: str) -> str | None:
    """The word by which ``question`` points back at an earlier turn ("it", "that", "and"), or ``None``.

    A short question without a subject of its own ("At what valuation?") refers back without
    such a word: that gives ``""``.
    """
    match = _ELLIPSIS.match(question)
    if match:
        return match.group(0).strip()
    words = _cased_words(question)
    keys = [_key(w) for w in words]
    for i, (word, k) in enumerate(zip(words, keys)):
        after = keys[i + 1] if i + 1 < len(keys) else ""
        if _is_acronym(word):
            continue  # "IT helpdesk", "the US": names, not pronouns
        # A pronoun after a name in the same question refers to that name ("Which OpenAI product keeps its lead?"),
        # a possessive after a noun phrase to that noun ("Which company moved its headquarters?").
        named_before = any(_is_name(w) for w in words[:i])
        noun_before = k in _POSSESSIVES and any(
            keys[j] in _DETERMINERS and not _is_function_word(words[j + 1]) for j in range(i - 1))
        if k in _PRONOUNS and not named_before and not noun_before and not (k == "there" and after in _EXISTENTIAL):
            return word
        if k in _DEMONSTRATIVES and (i <= 1 or keys[i - 1] in _BEFORE_DEMONSTRATIVE):
            return word
    terms = subject_terms(question)
    if any(_is_entity(t) for t in terms) or len(terms) > SHORT_QUESTION_WORDS:
        return None
    return "" if "the" in keys or not _VERBS & set(keys) else None


def is_followup(question: str) -> bool:
    """True when ``question`` refers back to earlier turns instead of naming its own subject."""
    return referring_word(question) is not None


def clarification(question: str, history: list[str], answers: list[str] | None = None) -> str | None:
    """What to ask the user instead of answering, when ``question`` points back ("it", "that",
    "And ...?") and no earlier turn gives it a subject; ``None`` when it can be searched for."""
    word = referring_word(question)
    if not word or context_terms(question, history, answers):
        return None
    if _key(word) in _PRONOUNS | _DEMONSTRATIVES:
        return (f"What does “{word.lower()}” refer to? No earlier question says: "
                "please ask again with the name of what you mean.")
    if any(_is_entity(t) for t in subject_terms(question)):
        return None  # "What about Oracle?" names its subject
    return ("What are you asking about? No earlier question says: please ask a whole question, "
            "with the name of what you mean.")


def _names_something(answer: str) -> bool:
    return bool(answer) and not _AMOUNT.search(answer) and any(_is_entity(t) for t in subject_terms(answer))


def context_terms(question: str, history: list[str], answers: list[str] | None = None) -> list[str]:
    """The earlier subject a follow-up ``question`` is searched for with (empty when there is none).

    The bot's last answer, when it names something, is what "it" points at: it comes with the names
    of the earlier question. An amount or a date is no subject ("How much more does he want?" after
    "12 billion"), except for "that"/"this" ("How much of that ..."), which may point at it: then
    it comes with all the earlier question's subject terms, as they come alone without an answer.
    """
    if not history:
        return []
    previous = resolve_followup(history[-1], history[:-1], answers[:-1] if answers else None)
    last_answer = answers[-1] if answers and len(answers) == len(history) and answers[-1] else ""
    earlier = subject_terms(previous)
    if _names_something(last_answer):
        candidates = subject_terms(last_answer) + [t for t in earlier if _is_entity(t)]
    elif last_answer and _key(referring_word(question) or "") in _DEMONSTRATIVES:
        candidates = subject_terms(last_answer) + earlier
    else:
        candidates = earlier
    own = {_key(w) for w in _words(question)}
    context = []
    for term in candidates:
        if _key(term) not in own and len(term) <= MAX_TERM_CHARS:
            own.add(_key(term))
            context.append(term)
    return context[:MAX_CONTEXT_TERMS]


def resolve_followup(question: str, history: list[str], answers: list[str] | None = None) -> str:
    """The query to search for: ``question`` itself, or a follow-up plus the earlier subject.

    ``history`` holds the earlier user questions, oldest first; ``answers`` the bot's
    answers to them (same order, ``None``/empty for "not found"), when known.
    """
    question = question.strip()
    if not history or not is_followup(question):
        return question
    context = context_terms(question, history, answers)
    return f"{question} ({' '.join(context)})" if context else question


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

    def ask(self, bot, question: str, k: int = 5, explain: bool = False):
        """Ask ``bot`` (a :class:`chatbot.qa.chatbot.Chatbot`) with this history, and record the turn."""
        answer = bot.ask(question, history=self.questions, k=k, answers=[a or "" for a in self.answers],
                         explain=explain)
        self.add(question, answer.text)
        return answer

    def reset(self) -> None:
        self.questions, self.answers = [], []
