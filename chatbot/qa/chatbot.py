"""End to end: index the corpus, retrieve passages, read them, answer with citations.

``Chatbot.load`` makes sure the on-disk index matches the corpus and settings
(rebuilding it when a file, the embedder or the chunking changed); models load
lazily, once. ``Chatbot.ask`` takes five steps: prepare the question (follow-ups
resolved), retrieve ``k`` passages, read them with the one reader (whole, or windows
around their sentences closest to the question; those that cannot change the answer are
left unread), rank the candidates by the answer
policy's probability that they are right and decide (abstain under its threshold),
build the answer with its citations.
``Retriever`` is the retrieval half alone (``load`` and ``search``), for programs
that want cited passages without the reader.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SHIPPED_READER_DIR, Settings
from ..errors import ChatbotError
from ..index.store import VectorIndex
from ..index.sync import corpus_signature, ensure_index, query_embedder
from ..ingest.chunking import sentence_spans
from ..ingest.corpus import detect_language
from ..models.embedding import TextEmbedder, cached, make_embedder
from ..models.reader import Reader
from ..types import Answer, Candidate, Citation, Explanation, Question, ReadingWindow, RetrievedPassage, Sentence
from .conversation import clarification, resolve_followup
from .policy import POLICY_FILE, AnswerPolicy, candidate_features, feature_ranges, passage_features, policy_for
from .questions import clean_history, clean_question, clip
from .relevance import SentenceRelevance
from .retrieval import MAX_K, HybridRetriever

if TYPE_CHECKING:
    from typing import Self

log = logging.getLogger(__name__)

# Chatbot.warm_up embeds the sentences of a corpus of at most this many passages for the answer ranking
# (SentenceRelevance); larger corpora's sentences are embedded as answers first need them.
WARM_UP_PASSAGES = 2000


def searched_for(question: str, history: list[str] | None, answers: list[str] | None, settings: Settings) -> str:
    """The query ``question`` is searched for (follow-ups get their earlier subject), at most
    ``max_query_chars`` long whatever the history: only the last ``max_history_turns`` questions and
    answers are used, each cleaned as a question and cut to ``max_question_chars``. ``ValueError`` when
    the question is empty or the history is not a list."""
    return _query(*_cleaned(question, history, answers, settings), settings)


def _cleaned(question: str, history: list[str] | None, answers: list[str] | None,
             settings: Settings) -> tuple[str, list[str], list[str] | None]:
    """The question, the last ``max_history_turns`` earlier questions and answers, each cleaned and cut."""
    s = settings
    history = clean_history(history, s.max_history_turns, s.max_question_chars)
    answers = clean_history(answers, s.max_history_turns, s.max_question_chars) if answers is not None else None
    return clean_question(question, s.max_question_chars), history, answers


def _query(question: str, history: list[str], answers: list[str] | None, settings: Settings) -> str:
    return clip(resolve_followup(question, history, answers), settings.max_query_chars)


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
    return k


class Retriever:
    """Cited-passage search over one indexed corpus: the retrieval half of :class:`Chatbot`.

    ``search`` is safe to call from several threads at once.
    """

    def __init__(self, index: VectorIndex, settings: Settings, embedder: TextEmbedder | None = None):
        self.settings = settings
        self.index = index
        self.embedder = embedder or make_embedder(settings.embedder, settings.threads)
        # Query vectors, kept between questions: the answer ranking embeds the same question with the same
        # encoder when it is the shipped one (SentenceRelevance), and then finds it here.
        self.query_vectors = cached(self.embedder)
        self.retriever = HybridRetriever(index, self.query_vectors)
        self._update_lock = threading.Lock()  # one index update at a time
        self._signature = corpus_signature(settings.corpus_dir)  # of the corpus the index was made from

    def refresh(self, on_progress: Callable[[int, int], None] | None = None, *, wait: bool = True) -> bool:
        """Bring the index up to date with the corpus folder when its files changed since the last look
        (a scan of names, sizes and times; then only new and changed documents are embedded, see
        :func:`ensure_index`). Questions go on meanwhile, over the index as it was. True when the index
        changed. ``wait=False`` returns False at once when another update is running.
        Raises :class:`~chatbot.errors.ChatbotError` when the update fails (the index stays as it was)."""
        if corpus_signature(self.settings.corpus_dir) == self._signature:
            return False
        if not self._update_lock.acquire(blocking=wait):
            return False
        try:
            signature = corpus_signature(self.settings.corpus_dir)
            if signature == self._signature:
                return False
            try:
                index = ensure_index(self.settings, embedder=self.embedder, on_progress=on_progress)
            finally:
                self._signature = signature  # a failed update is reported once, not on every question
            self.index, self.retriever = index, HybridRetriever(index, self.query_vectors)
            return True
        finally:
            self._update_lock.release()

    def _picked_up(self) -> None:
        """Files dropped into the corpus folder indexed before a question (``refresh``); a failure is
        logged, and the question answered over the index as it was."""
        try:
            self.refresh(wait=False)
        except ChatbotError as exc:
            log.warning("the corpus folder changed but the index could not be updated: %s", exc)

    @classmethod
    def load(cls, index_dir: str | Path | None = None, corpus_dir: str | Path | None = None, *,
             embedder: str | TextEmbedder | None = None, settings: Settings | None = None,
             progress: bool = False) -> Self:
        """Open the index of ``corpus_dir`` in ``index_dir``, building it first when missing or stale.

        Directories default to ``settings`` (``index`` and ``corpus`` in the current directory, or
        ``CHATBOT_INDEX``/``CHATBOT_CORPUS``); ``embedder`` is a sentence-transformers name or path,
        or a loaded :class:`~chatbot.models.embedding.TextEmbedder`. Queries are embedded by the index's ONNX
        query encoder when it has one (``settings.query_runtime``, :func:`query_embedder`); torch and
        ONNX Runtime use ``settings.threads`` threads.
        Raises a :class:`~chatbot.errors.ChatbotError` whose message says how to fix the problem.
        """
        settings = (settings or Settings.from_env()).with_(
            index_dir=Path(index_dir) if index_dir is not None else None,
            corpus_dir=Path(corpus_dir) if corpus_dir is not None else None,
            embedder=embedder if isinstance(embedder, str) else getattr(embedder, "name", None),
        )
        import faiss

        faiss.omp_set_num_threads(settings.faiss_threads)
        if embedder is None or isinstance(embedder, str):
            embedder = make_embedder(settings.embedder, settings.threads)
        index = ensure_index(settings, progress, embedder)
        return cls(index, settings, query_embedder(index, embedder, settings))

    def search(self, query: str, k: int = 5) -> list[RetrievedPassage]:
        """The ``k`` (1 to 50) passages best matching ``query``, best first; ``ValueError`` on bad arguments.

        Each passage has ``text``, ``score`` (fused rank score), ``source``, ``title`` and the
        ``start``/``end`` character offsets of ``text`` in the original file.
        """
        query = clean_question(query, self.settings.max_question_chars)
        self._picked_up()
        return self.retriever.retrieve(query, check_k(k))


class Chatbot(Retriever):
    """Question answering over one indexed corpus; thread-safe once loaded.

    ``Chatbot.load(index_dir, corpus_dir)`` and ``search`` are those of :class:`Retriever`.
    One reader reads the retrieved passages, whatever their language; one answer policy
    (:mod:`chatbot.qa.policy`, beside the reader's weights) judges the candidates.
    """

    def __init__(self, index: VectorIndex, settings: Settings, embedder: TextEmbedder | None = None,
                 reader: Reader | None = None, policy: AnswerPolicy | None = None):
        super().__init__(index, settings, embedder)
        self.reader = reader or Reader(settings.reader, precision=settings.reader_precision,
                                       runtime=settings.reader_runtime, threads=settings.threads)
        if policy is None:
            policy, path = policy_for(self.reader.model_name_or_path, SHIPPED_READER_DIR)
            if path.parent != Path(self.reader.model_name_or_path):
                log.warning("the reader %s has no %s beside it: its candidates are judged by the policy fitted for "
                            "the shipped reader (%s); `chatbot fit-policy --reader %s` fits one for it",
                            self.reader.model_name_or_path, POLICY_FILE, path, self.reader.model_name_or_path)
        self.policy = policy
        self.relevance = (SentenceRelevance(self.query_vectors) if settings.relevance_encoder == self.embedder.name
                          else SentenceRelevance.load(settings.relevance_encoder, threads=settings.threads)
                          if settings.relevance_encoder else None)

    def warm_up(self) -> None:
        """Load the models (embedder, sentence encoder and reader) and run them once, so that the first
        question is fast."""
        self.retriever.warm_up()
        if self.relevance is not None:  # a small corpus's sentences too (a few seconds for the shipped 49 passages)
            passages = self.index.passages
            self.relevance.warm_up([p.text for p in passages] if len(passages) <= WARM_UP_PASSAGES else [])
        self.reader.read("What is this?", ["This is a warm-up passage."], top_k=1)

    def rewrite(self, question: str, history: list[str] | None = None, answers: list[str] | None = None) -> str:
        """The query a question is searched for (:func:`searched_for`)."""
        return searched_for(question, history, answers, self.settings)

    def ask(self, question: str, history: list[str] | None = None, k: int = 5,
            answers: list[str] | None = None, explain: bool = False) -> Answer:
        """Answer ``question`` from the corpus; ``history`` (earlier questions) and ``answers``
        (the bot's earlier answers, when known) resolve follow-ups; ``explain`` adds an
        :class:`~chatbot.types.Explanation` to the answer."""
        started = time.perf_counter()
        check_k(k)
        self._picked_up()
        question = self.prepare(question, history, answers)
        if question.clarification:  # "it" with nothing to refer to: ask back instead of guessing
            return Answer(question=question.text, searched_for=question.text, text=None, score=0.0,
                          clarification=question.clarification, latency_ms=_ms_since(started))
        passages = self.retriever.retrieve(question.searched_for, k)
        candidates = self.read(question, passages)
        ranked, best = self.decide(question, candidates)
        return self.build_answer(question, passages, ranked, best, started, explain)

    def prepare(self, question: str, history: list[str] | None = None,
                answers: list[str] | None = None) -> Question:
        """Step 1: the question cleaned, its follow-up resolved (:func:`searched_for`), its language, or
        the question back when it refers to nothing."""
        text, history, answers = _cleaned(question, history, answers, self.settings)
        query = _query(text, history, answers, self.settings)
        return Question(text=text, searched_for=query, language=detect_language(query),
                        clarification=clarification(text, history, answers))

    def read(self, question: Question, passages: list[RetrievedPassage]) -> list[Candidate]:
        """Step 3: the reader's best spans in each retrieved passage (of :meth:`windows`: the whole passage by
        default), brackets paired (:func:`balanced`), with the features the policy judges them by.

        The passages are read most promising first, and one is left unread when no span in it could be judged
        likelier than the best candidate already found: every feature but the span's own is known before
        reading, so the policy bounds what a passage can give (:meth:`AnswerPolicy.bound`). A passage in the
        question's language is still read while the best candidate is in another (:func:`in_question_language`
        may cite the answer there). The answer is therefore the one reading every passage gives; only
        runners-up can be missing (``read_every_passage`` reads them all)."""
        sentences = self.sentences(question, passages)
        best_closeness = max((s.closeness for of_passage in sentences for s in of_passage), default=0.0)
        shared = [passage_features(p, question.searched_for, question.language, best_closeness) for p in passages]
        bounds = [self.policy.bound(feature_ranges(f, max(s.closeness for s in of_passage)))
                  for f, of_passage in zip(shared, sentences)]
        windows = self.windows(passages, sentences)
        candidates: list[Candidate] = []
        best: Candidate | None = None
        for i in sorted(range(len(passages)), key=lambda i: -bounds[i]):
            foreign_best = best is not None and best.passage.lang != question.language
            if (windows[i] and (self.settings.read_every_passage or best is None or bounds[i] > best.confidence
                                or (foreign_best and passages[i].lang == question.language))):
                found = self._read_passage(question, windows[i], sentences[i], shared[i])
                candidates += found
                best = max([c for c in (best, *found) if c is not None], key=lambda c: c.confidence, default=None)
        return candidates

    def _read_passage(self, question: Question, windows: list[ReadingWindow], sentences: list[Sentence],
                      shared: dict[str, float]) -> list[Candidate]:
        """The candidates of one passage, read in ``windows``, with their features and confidence."""
        spans = self.reader.read(question.searched_for, [w.text for w in windows], top_k=self.settings.reader_top_k)
        candidates = []
        for span in spans:
            window = windows[span.text_index]
            passage = window.passage
            start, end = balanced(passage.text, window.start + span.start, window.start + span.end)
            candidates.append(Candidate(text=passage.text[start:end], start=start, end=end, passage=passage,
                                        reader_probability=span.score))
        starts = [s.start for s in sentences]  # a candidate's sentence: the last one starting at or before it
        closeness = [sentences[max(0, bisect.bisect_right(starts, c.start) - 1)].closeness for c in candidates]
        candidate_features(candidates, closeness, question.searched_for, shared)
        return self.policy.judge(candidates)

    def sentences(self, question: Question, passages: list[RetrievedPassage]) -> list[list[Sentence]]:
        """The sentences of each passage (the whole passage when it has none), with their cosine with the
        question (0 without a sentence encoder)."""
        spans = [sentence_spans(p.text) for p in passages]
        texts = [p.text[a:b] for p, of_passage in zip(passages, spans) for a, b in of_passage]
        cosines = iter(self.relevance.cosines(question.searched_for, texts) if self.relevance is not None
                       else [0.0] * len(texts))
        return [[Sentence(a, b, next(cosines)) for a, b in of_passage] for of_passage in spans]

    def windows(self, passages: list[RetrievedPassage], sentences: list[list[Sentence]]) -> list[list[ReadingWindow]]:
        """What the reader reads of each passage: the whole passage when ``read_sentences`` is 0 (the default) or
        there is no sentence encoder; else windows around the ``read_sentences`` sentences of ``passages`` closest
        to the question (:meth:`sentences`), each with ``window_context`` sentences either side, windows that meet
        in one passage merged, and nothing of a passage none of whose sentences is chosen.

        Windows are a speed setting, not exact: the reader sees less context, and on the policy's fitting
        questions they answered fewer right than whole passages (evals/README.md, "Reading windows")."""
        n, context = self.settings.read_sentences, self.settings.window_context
        if n <= 0 or self.relevance is None:
            return [[ReadingWindow(p, 0, len(p.text))] for p in passages]
        ranked = sorted(((s.closeness, i, j) for i, of_passage in enumerate(sentences) for j, s in enumerate(of_passage)),
                        key=lambda t: -t[0])
        chosen: list[list[tuple[int, int]]] = [[] for _ in passages]
        for _, i, j in ranked[:n]:
            first, last = max(0, j - context), min(len(sentences[i]) - 1, j + context)
            chosen[i].append((sentences[i][first].start, sentences[i][last].end))
        return [[ReadingWindow(p, a, b) for a, b in _merged(spans)] for p, spans in zip(passages, chosen)]

    def decide(self, question: Question, candidates: list[Candidate]) -> tuple[list[Candidate], Candidate | None]:
        """Step 4: the candidates ranked by the policy's probability that they are right, and the answer:
        the most likely one (cited where the asker reads it when a passage in the question's language says
        the same, :func:`in_question_language`), or None when even it is under the policy's threshold."""
        ranked = self.policy.judge(candidates)
        best = in_question_language(ranked[0], ranked, question.language) if ranked else None
        return ranked, best if self.policy.answers(best) else None

    def build_answer(self, question: Question, passages: list[RetrievedPassage], ranked: list[Candidate],
                     best: Candidate | None, started: float, explain: bool = False) -> Answer:
        """Step 5: the answer with its citations (the answer's passage first), runners-up and, on request,
        why."""
        top = best or (ranked[0] if ranked else None)
        explanation = None
        if explain:
            explanation = Explanation(searched_for=question.searched_for, language=question.language,
                                      passages=passages, candidates=ranked, threshold=self.policy.threshold,
                                      decision=decision(best, top, self.policy.threshold))
        return Answer(
            question=question.text,
            searched_for=question.searched_for,
            text=best.text if best else None,
            score=round(top.confidence, 4) if top else 0.0,
            citations=self._citations(passages, best),
            alternatives=_distinct(ranked, answer=best)[: self.settings.alternatives],
            latency_ms=_ms_since(started),
            explanation=explanation,
        )

    def _citations(self, passages: list[RetrievedPassage], best: Candidate | None) -> list[Citation]:
        """The answer's passage first (with the answer's offsets), then the other passages by rank."""
        order = sorted(passages, key=lambda p: (best is None or p is not best.passage, p.rank))
        citations = []
        for p in order[: self.settings.max_citations]:
            answer = best is not None and p is best.passage
            citations.append(Citation(
                source=p.source, title=p.title, start=p.start, end=p.end, text=p.text, page=p.page,
                answer_start=p.start + best.start if answer else None,
                answer_end=p.start + best.end if answer else None,
            ))
        return citations


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def decision(best: Candidate | None, top: Candidate | None, threshold: float) -> str:
    """The policy's decision in words, for the explanation."""
    if top is None:
        return "abstained: the reader found no span in the retrieved passages"
    if best is None:
        return (f"abstained: the most likely answer, {top.text!r}, is right with probability {top.confidence:.2f}, "
                f"under the threshold {threshold:.2f}")
    return (f"answered {best.text!r} from {best.passage.source} (passage {best.passage.rank + 1}): probability "
            f"{best.confidence:.2f} of being right, at or over the threshold {threshold:.2f}")


def in_question_language(best: Candidate, ranked: list[Candidate], language: str) -> Candidate:
    """``best``, or the same answer found in a passage in the question's language: an answer both
    languages give ("X" in the Russian and the English article) is cited where the asker can read it.
    The same answer: the same text, else the likeliest candidate holding every word of ``best`` written
    in the question's script ("платформу X" -> "X platform"). It keeps ``best``'s confidence when its own
    is lower: the policy judged the answer, and this only chooses where to cite it."""
    if best.passage.lang == language:
        return best
    same = best.text.strip().casefold()
    shared = {w for w in _words(same) if any(c.isalpha() for c in w) and detect_language(w) == language}
    own = [c for c in ranked if c.passage.lang == language]
    found = next((c for c in own if c.text.strip().casefold() == same),
                 next((c for c in own if shared and shared <= _words(c.text.casefold())), None))
    if found is None:
        return best
    found.confidence = max(found.confidence, best.confidence)
    return found


_PAIRS = {"(": ")", "[": "]", "«": "»", "“": "”", "„": "“"}
_OPENERS = {close: open_ for open_, close in _PAIRS.items() if close not in _PAIRS}
# How far past a span its closing bracket may be for the span to be extended to it.
BALANCE_REACH = 40


def balanced(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` (a span of a passage) with its brackets and quotes paired: one it opens is
    closed by extending the span to it when it follows within :data:`BALANCE_REACH` characters
    ("платформу X (бывший Twitter" -> "... Twitter)"), else the span ends before it; a stray closing one
    at an end is dropped. Spans that are balanced, or that this would empty, come back as they are."""
    stack: list[int] = []
    stray: int | None = None
    new_start, new_end = start, end
    for i, ch in enumerate(text[start:end], start):
        if ch in _PAIRS and not (ch == "“" and stack and text[stack[-1]] == "„"):
            stack.append(i)
        elif ch in _OPENERS or ch == "“":
            if stack and _PAIRS[text[stack[-1]]] == ch:
                stack.pop()
            elif stray is None:
                stray = i
    if stack:
        opener = stack[0]
        close = text.find(_PAIRS[text[opener]], end, end + BALANCE_REACH)
        if len(stack) == 1 and close != -1 and "\n" not in text[end:close]:
            new_end = close + 1
        else:
            new_end = opener
    elif stray is not None and stray in (start, end - 1):
        new_start, new_end = (start + 1, end) if stray == start else (start, end - 1)
    while new_end > new_start and (text[new_end - 1].isspace() or text[new_end - 1] in ",;:-–—"):
        new_end -= 1
    while new_start < new_end and text[new_start].isspace():
        new_start += 1
    if new_start >= new_end:
        return start, end
    return new_start, new_end


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` sorted, those that overlap or touch joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


def _distinct(candidates: list[Candidate], answer: Candidate | None = None) -> list[Candidate]:
    """``candidates`` with one of each text (case and surrounding spaces aside), the answer's text left out."""
    seen, out = {answer.text.strip().lower()} if answer else set(), []
    for s in candidates:
        key = s.text.strip().lower()
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
