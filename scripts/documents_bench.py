"""Issue 18's bar, measured: real documents answered with the right citation and page, and how long
a 20-page PDF added to a running chatbot over a ~5,000-chunk index takes to become answerable.

1. A folder of the demo corpus plus a 3-page PDF, a DOCX and an HTML page (tests/sample_documents.py):
   every file indexed; the question answered only by each (the PDF's on page 2) is asked.
2. The 98 COVID-QA articles (../shared/qa-data/covid-qa, about 5,100 passages) are dropped into the folder and
   picked up incrementally. Then a 20-page PDF is added through the document library (what the web chat's
   Documents tab and POST /documents call), timed, and a question answered on its page 2 is asked; the
   part-1 questions are asked again, and must get the same answers.

    PYTHONPATH=. python scripts/documents_bench.py --work /tmp/documents-bench [--articles 98]

Each part's figures are printed as JSON as soon as it is done.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sample_documents import (  # noqa: E402
    DOCX_ANSWER, DOCX_QUESTION, HTML_ANSWER, HTML_PAGE, HTML_QUESTION, PDF_ANSWER, PDF_QUESTION, make_docx, make_pdf,
)

from chatbot.config import Settings  # noqa: E402
from chatbot.ingest.documents import DocumentLibrary  # noqa: E402
from chatbot.qa.chatbot import Chatbot  # noqa: E402

COVID_QA = ROOT.parent / "shared" / "qa-data" / "covid-qa" / "covid-qa.json"
BIG_PDF_PAGES = [("Tunnels of the northern line", "The northern railway line crosses the Marrow hills through six tunnels."),
                 ("The Marrowby tunnel", "The Marrowby tunnel was bored by the Ostlund Drilling consortium between "
                                         "2011 and 2014. It is 4.2 kilometres long.")] + [
    (f"Section {n}", f"Section {n} of this report lists the routine inspections of the year.") for n in range(3, 21)]
BIG_PDF_QUESTION, BIG_PDF_ANSWER = "Who bored the Marrowby tunnel?", "Ostlund Drilling"
QUESTIONS = [(PDF_QUESTION, PDF_ANSWER, "harbour.pdf", 2), (DOCX_QUESTION, DOCX_ANSWER, "orchard.docx", None),
             (HTML_QUESTION, HTML_ANSWER, "bridge.html", None),
             ("Which platform is Grok integrated into?", "X", "000_1a2eb30073d68791.txt", None)]


def ask(bot, question: str, answer: str, source: str, page: int | None) -> dict:
    started = time.perf_counter()
    reply = bot.ask(question)
    seconds = time.perf_counter() - started
    cited = reply.citations[0] if reply.citations else None
    return {"question": question, "answer": reply.text, "source": cited and cited.source, "page": cited and cited.page,
            "right": bool(reply.text and answer in reply.text and cited.source == source and cited.page == page),
            "seconds": round(seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="scratch folder (emptied)")
    parser.add_argument("--articles", type=int, default=98, help="COVID-QA articles added in part 2 (98: all)")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    corpus = Path(shutil.copytree(ROOT / "corpus", args.work / "corpus"))
    (corpus / "harbour.pdf").write_bytes(make_pdf())
    (corpus / "orchard.docx").write_bytes(make_docx())
    (corpus / "bridge.html").write_text(HTML_PAGE, encoding="utf-8")
    settings = Settings.from_env().with_(corpus_dir=corpus, index_dir=args.work / "index", allow_uploads=True)
    report: dict = {}

    bot = Chatbot.load(settings=settings)
    bot.warm_up()
    report["folder"] = {"documents": len(bot.index.documents), "skipped": bot.index.manifest["skipped"],
                        "answers": [ask(bot, *q) for q in QUESTIONS]}
    show("folder", report)

    articles = json.loads(COVID_QA.read_text(encoding="utf-8"))["data"][: args.articles]
    for n, article in enumerate(articles):
        text = "\n\n".join(p["context"] for p in article["paragraphs"])
        (corpus / f"covid-{n:03d}.txt").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    bot.refresh()
    report["large_index"] = {"chunks": len(bot.index), "documents": len(bot.index.documents),
                             "incremental_seconds": round(time.perf_counter() - started, 1)}
    show("large_index", report)

    pdf = args.work / "Tunnel report.pdf"
    pdf.write_bytes(make_pdf(BIG_PDF_PAGES, filler=14))
    library = DocumentLibrary(bot, settings)
    started = time.perf_counter()
    (added,) = library.add([(pdf.name, pdf)])
    indexed = time.perf_counter() - started
    answered = ask(bot, BIG_PDF_QUESTION, BIG_PDF_ANSWER, "Tunnel report.pdf", 2)
    report["upload"] = {"pdf": added.to_dict(), "index_seconds": round(indexed, 2), "answer": answered,
                        "answerable_after_seconds": round(indexed + answered["seconds"], 2),
                        "chunks_after": len(bot.index),
                        "earlier_answers": [ask(bot, *q) for q in QUESTIONS]}
    report["upload"]["earlier_unchanged"] = [a["answer"] for a in report["upload"]["earlier_answers"]] == [
        a["answer"] for a in report["folder"]["answers"]]
    show("upload", report)
    return 0


def show(part: str, report: dict) -> None:
    print(json.dumps({part: report[part]}, indent=2, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    sys.exit(main())
