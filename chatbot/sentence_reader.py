"""Language-independent span choice, for passages the neural reader cannot read.

The shipped reader's tokenizer is English-only (uncased, diacritics stripped, Cyrillic
broken into letters), so on the Russian article it reads little better than chance.
:class:`SentenceReader` answers from such passages without reading them token by token:

1. the best sentences are found with the multilingual embedder (USE handles Russian and
   English queries alike, so it also serves English questions about the Russian article);
2. inside a sentence, the words the question shares with it (Snowball stems) are anchors,
   and the candidate answers are the runs of other words between anchors and punctuation;
3. a candidate scores by its shape (names in Latin script, capitalised names, amounts with
   their unit words, quoted titles), by how well that shape fits the question word
   (how much / when / who / what is it called), and by its distance to the anchors.

The span's score is ``P(sentence) * P(candidate | sentence)``, where ``P(sentence)`` is a
softmax over the sentences' similarities scaled by how similar the best one is: a probability-like
number in [0, 1] that the pipeline ranks together with the neural reader's probabilities. Answers are
always the passage's own characters at their offsets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN

from .chunking import split_sentences
from .corpus import detect_language
from .embedding import TextEmbedder, cached
from .reader import MONTHS, expected_answer_type
from .retrieval import tokenize
from .types import Span

# A word: an amount ("$30", "1,5", "20%"), or letters/digits with inner hyphens or apostrophes.
_WORD = re.compile(r"[$€£]?\d[\d.,]*%?|\w+(?:[-'’]\w+)*")
# Candidates never cross these: clause punctuation, quotes and brackets.
_CLAUSE_BREAK = re.compile(r"[,;:()«»\"“”„—–!?\n]|\s-\s|\.\s")
_LATIN = re.compile(r"[A-Za-z]")
_NUMBER_WORD = re.compile(
    r"^(\d.*|[$€£]\d.*|one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|"
    r"trillion|тысяч\w*|миллион\w*|миллиард\w*|триллион\w*|один|одна|два|две|три|четыре|пять|десять|сто)$", re.I)
_UNIT_WORD = re.compile(
    r"^(dollars?|euros?|pounds?|percent|gpus?|доллар\w*|евро|рубл\w*|процент\w*|единиц\w*|штук\w*|лет|год\w*|"
    r"тысяч\w*|миллион\w*|миллиард\w*|триллион\w*|млн|млрд)$", re.I)
_MONTH = re.compile(r"^(" + MONTHS + r")$", re.I)
# Russian adjective endings: an answer does not end in an adjective ("газовых" needs "турбин").
_ADJECTIVE_END = re.compile(r"[а-яё](ый|ий|ой|ая|яя|ое|ее|ые|ие|ых|их|ую|юю|ого|его|ому|ему|ыми|ими)$", re.I)
# Russian verb endings (reflexive, infinitive, present tense): a lone verb is rarely an answer.
_VERB_END = re.compile(r"[а-яё]{3}(ся|сь|ть|ет|ит|ют|ят|ут)$", re.I)
# The noun after "which"/"какую" names the answer's kind; the answer may include it ("ядерную энергию").
_FOCUS = re.compile(r"\b(?:which|what|какой|какая|какое|какие|какую|каким|каком|какого)\s+"
                    r"(?:(?:kinds?|types?|sorts?)\s+of\s+|(?:вид|тип)\w*\s+)?(\w+)", re.I)
# "What is it called" questions want a name even without a question word for one.
_NAME_QUESTION = re.compile(r"\b(call(ed)?|name[ds]?|назыв\w*|назван\w*|имя|какой компании|какая компания|"
                            r"какой стран\w*|какой город|каком городе|где)\b", re.I)
# Words that never start or end an answer: function words of both languages (numbers excepted).
_EDGE_STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | frozenset(STOPWORDS_RUSSIAN) | frozenset(
    "its also which whose whom который которая которое которые которого которой которым это также либо очень "
    "сначала стал стала стали стало будут включая including".split()
)
_YEAR = re.compile(r"^(1[5-9]|20)\d\d$")

MAX_SENTENCES = 3
ROOT_CHARS = 6               # letters two stems share to count as one root (see _shares_root)
LEXICAL_WEIGHT = 0.2          # plus this times the share of question terms a sentence has
MAX_CANDIDATE_WORDS = 5
SENTENCE_TEMPERATURE = 0.05   # cosine similarities differ by a few hundredths between sentences
SENTENCE_MIDPOINT = 0.30      # the score (similarity + lexical share) at which a sentence is as likely to answer as not
NO_ANSWER_WEIGHT = 2.0        # "no answer in this sentence", against a whole expected-shape name at 9
ANCHOR_DECAY = 3.0            # words: a candidate this far from the nearest anchor keeps 1/e
ALIGN_MIN = 0.6               # multilingual cosine at which a word in the other script translates a question word


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    text: str
    anchor: bool
    focus: bool
    clause: int
    kind: str  # "amount", "date", "name" or "word"
    # Read once per word for _candidate_weight, which sees each word in several runs.
    number: bool = False
    edge_stopword: bool = False
    adjective: bool = False
    verb: bool = False
    year: bool = False


class SentenceReader:
    """Reads passages by sentence similarity and answer shape instead of a QA model.

    ``embedder`` must embed the question and the passages' language into one space (the
    multilingual embedder). Same ``read`` interface as :class:`chatbot.reader.Reader`.
    """

    def __init__(self, embedder: TextEmbedder):
        self.embedder = cached(embedder)

    def read(self, question: str, passages: list[str], top_k: int = 5) -> list[Span]:
        if not passages or not question.strip():
            return []
        sentences = [(p, a, b) for p, text in enumerate(passages) for a, b in split_sentences(text)]
        if not sentences:
            return []
        texts = [passages[p][a:b] for p, a, b in sentences]
        vectors = self.embedder.embed([question] + texts, query=True)
        cues = QuestionCues.of(question)
        similarity = vectors[1:] @ vectors[0] + LEXICAL_WEIGHT * np.array([_overlap(cues.terms, t) for t in texts])
        best = float(similarity.max())
        answerable = 1.0 / (1.0 + math.exp(-(best - SENTENCE_MIDPOINT) / SENTENCE_TEMPERATURE))
        sentence_probs = np.exp((similarity - best) / SENTENCE_TEMPERATURE)
        sentence_probs *= answerable / sentence_probs.sum()
        chosen = np.argsort(-similarity)[:MAX_SENTENCES]
        cues = self._align(question, cues, [texts[i] for i in chosen])
        spans = []
        for i in chosen:
            p, a, b = sentences[i]
            p_sentence = float(sentence_probs[i])
            for start, end, share in choose_spans(passages[p][a:b], cues):
                spans.append(Span(text=passages[p][a + start : a + end], score=p_sentence * share,
                                  passage_index=p, start=a + start, end=a + end))
        spans.sort(key=lambda s: -s.score)
        return spans[:top_k]

    def _align(self, question: str, cues: "QuestionCues", sentences: list[str]) -> "QuestionCues":
        """``cues`` plus the words of ``sentences`` written in another script than the question's that
        translate one of its words (multilingual word vectors at least ``ALIGN_MIN`` apart): stems
        cannot anchor an English question in a Russian sentence, but "funds" and "фонды" align."""
        language = detect_language(question)
        foreign = {m.group().lower() for text in sentences for m in _WORD.finditer(text)
                   if detect_language(m.group()) != language and not _NUMBER_WORD.match(m.group())
                   and m.group().lower() not in _EDGE_STOPWORDS}
        asked = {m.group().lower() for m in _WORD.finditer(question) if m.group().lower() not in _EDGE_STOPWORDS}
        if not foreign or not asked:
            return cues
        foreign_words, asked_words = sorted(foreign), sorted(asked)
        similarity = self.embedder.embed(foreign_words, query=True) @ self.embedder.embed(asked_words, query=True).T
        focus = [j for j, w in enumerate(asked_words) if set(tokenize(w)) & cues.focus]
        aligned = {w for w, row in zip(foreign_words, similarity) if row.max() >= ALIGN_MIN}
        aligned_focus = {w for w, row in zip(foreign_words, similarity) if focus and row[focus].max() >= ALIGN_MIN}
        return replace(cues, aligned=frozenset(aligned), aligned_focus=frozenset(aligned_focus))


def _overlap(terms: frozenset[str], sentence: str) -> float:
    """The share of the question's terms that ``sentence`` contains."""
    return len(terms & set(tokenize(sentence))) / len(terms) if terms else 0.0


def answer_shape(question: str) -> str | None:
    """The shape of answer a question asks for: 'amount', 'date', 'name' or None."""
    return expected_answer_type(question) or ("name" if _NAME_QUESTION.search(question) else None)


@dataclass(frozen=True)
class QuestionCues:
    """What the span choice reads from a question: its stems (anchors where a sentence has
    them), the answer shape it asks for, and the stems of the noun after "which"/"какой"
    (which may close a candidate: "ядерную энергию")."""

    terms: frozenset[str]
    shape: str | None
    focus: frozenset[str]
    # Lowercased words in another script that translate a question word / its focus noun (SentenceReader._align).
    aligned: frozenset[str] = frozenset()
    aligned_focus: frozenset[str] = frozenset()

    @classmethod
    def of(cls, question: str) -> "QuestionCues":
        return cls(frozenset(tokenize(question)), answer_shape(question),
                   frozenset(stem for m in _FOCUS.finditer(question) for stem in tokenize(m.group(1))))


def choose_spans(sentence: str, cues: QuestionCues) -> list[tuple[int, int, float]]:
    """Candidate answers in ``sentence`` as ``(start, end, probability)``; the probabilities and
    that of "no answer here" (weight ``NO_ANSWER_WEIGHT``) sum to 1."""
    words = _words(sentence, cues)
    expects = cues.shape
    anchors = [i for i, w in enumerate(words) if w.anchor]
    weights: dict[tuple[int, int], float] = {}
    for i in range(len(words)):
        for j in range(i, min(i + MAX_CANDIDATE_WORDS, len(words))):
            run = words[i : j + 1]
            if run[0].anchor or run[-1].clause != run[0].clause:
                break
            if run[-1].anchor and not (run[-1].focus and j > i):
                break
            weight = _candidate_weight(run, expects, _is_whole(words, i, j))
            if weight <= 0:
                continue
            if anchors:
                weight *= _anchor_closeness(anchors, i, j)
            key = (run[0].start, run[-1].end)
            weights[key] = max(weights.get(key, 0.0), weight)
    total = sum(weights.values()) + NO_ANSWER_WEIGHT
    return [(a, e, w / total) for (a, e), w in weights.items()]


def _anchor_closeness(anchors: list[int], first: int, last: int) -> float:
    """1 right after an anchor word, falling with the distance; answers tend to follow the words
    they share with the question ("is called Colossus", "raised $12 billion"), so an anchor
    after the candidate counts half."""
    after = [first - k for k in anchors if k < first]
    before = [k - last for k in anchors if k > last]
    return max(math.exp(-(min(after) - 1) / ANCHOR_DECAY) if after else 0.0,
               0.5 * math.exp(-(min(before) - 1) / ANCHOR_DECAY) if before else 0.0)


def _words(sentence: str, cues: QuestionCues) -> list[_Word]:
    clause_starts = [m.start() for m in _CLAUSE_BREAK.finditer(sentence)]
    words = []
    for m in _WORD.finditer(sentence):
        stems = tokenize(m.group())
        lower = m.group().lower()
        anchor = bool(stems) and all(_shares_root(s, cues.terms) for s in stems) or lower in cues.aligned
        focus = anchor and (set(stems) <= cues.focus or lower in cues.aligned_focus)
        clause = sum(1 for c in clause_starts if c < m.start())
        number = bool(_NUMBER_WORD.match(m.group()))
        words.append(_Word(m.start(), m.end(), m.group(), anchor, focus, clause,
                           _kind(m.group(), first_in_sentence=m.start() == 0), number=number,
                           edge_stopword=lower in _EDGE_STOPWORDS and not number,
                           adjective=bool(_ADJECTIVE_END.search(m.group())), verb=bool(_VERB_END.search(m.group())),
                           year=bool(_YEAR.match(m.group()))))
    return words


def _is_whole(words: list[_Word], i: int, j: int) -> bool:
    """Whether no neighbour in the same clause could extend the run words[i..j] with its kind."""
    for k in (i - 1, j + 1):
        if 0 <= k < len(words) and words[k].clause == words[i].clause and not words[k].anchor \
                and words[k].kind == words[i].kind:
            return False
    return True


def _shares_root(stem: str, question_terms: frozenset[str]) -> bool:
    """Whether a question term has the same stem, or the same first ``ROOT_CHARS`` letters
    (Snowball keeps derivations apart: "критик" from "критике", "критикова" from "критиковали"),
    or, across scripts, the same sound ("memphi" and "мемфис" both start "memfi")."""
    if stem in question_terms:
        return True
    key, latin = _sound(stem), bool(_LATIN.search(stem))
    return any(
        len(stem) >= ROOT_CHARS and t[:ROOT_CHARS] == stem[:ROOT_CHARS]
        or len(key) >= ROOT_CHARS - 1 and latin != bool(_LATIN.search(t))
        and _sound(t)[: ROOT_CHARS - 1] == key[: ROOT_CHARS - 1]
        for t in question_terms)


_CYRILLIC_TO_LATIN = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "", "ы": "i", "ь": "",
    "э": "e", "ю": "iu", "я": "ia"})
_SPELLINGS = (("ph", "f"), ("w", "v"), ("x", "ks"), ("c", "k"), ("y", "i"), ("j", "i"), ("q", "k"))


@lru_cache(maxsize=4096)
def _sound(word: str) -> str:
    """A crude spelling-free key for matching a name across Latin and Cyrillic script."""
    key = word.lower().translate(_CYRILLIC_TO_LATIN)
    for spelling, sound in _SPELLINGS:
        key = key.replace(spelling, sound)
    return re.sub(r"(.)\1+", r"\1", key)


def _kind(text: str, first_in_sentence: bool) -> str:
    if _NUMBER_WORD.match(text) or _UNIT_WORD.match(text):
        return "amount"
    if _MONTH.match(text):
        return "date"
    if _LATIN.search(text) and text[0].isupper() or (text[0].isupper() and not first_in_sentence):
        return "name"
    return "word"


def _candidate_weight(run: list[_Word], expects: str | None, whole: bool) -> float:
    """How answer-like a run of words is, before its distance to the anchors."""
    if run[0].edge_stopword or run[-1].edge_stopword:
        return 0.0
    kinds = {w.kind for w in run}
    if kinds == {"amount"} and not run[0].number:
        return 0.0  # a unit word alone ("dollars") is not an amount
    if len(kinds) == 1 and kinds != {"word"}:
        weight = 3.0 if whole else 0.3  # a whole name, amount or date; part of one
    else:
        weight = 0.8 ** (len(run) - 1)
        if run[-1].adjective:
            weight *= 0.3  # "газовых" without its noun
        if len(run) == 1 and run[0].verb:
            weight *= 0.3
    if expects is not None:
        weight *= 3.0 if expects in kinds or (expects == "date" and "amount" in kinds) else 0.3
    if expects in ("amount", "date") and any(w.year for w in run):
        weight *= 3.0 if expects == "date" else 0.3  # "how many" rarely wants a year, "when" often does
    return weight
