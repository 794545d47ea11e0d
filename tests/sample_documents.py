"""Real PDF, DOCX and HTML files made inside the tests (fpdf2 and python-docx), with facts that
only they hold, for the converter, index and browser tests."""

from __future__ import annotations

import io

# One fact per page; the question about page 2 is answered only there.
PDF_PAGES = [
    ("Harbour Authority Annual Report",
     "The Quillon harbour authority was created in 1952 to manage the port of Quillon. "
     "Its board meets four times a year in the old customs house."),
    ("Dredging",
     "The main channel of Quillon harbour was dredged to a depth of fourteen metres in 2019. "
     "The dredging was carried out by the Velmar Marine company over seven months."),
    ("Finances",
     "The harbour authority reported revenue of 31 million euros last year. "
     "Most of it came from container fees and the ferry terminal."),
]
PDF_QUESTION = "Which company dredged the main channel of Quillon harbour?"
PDF_ANSWER = "Velmar Marine"

DOCX_TITLE = "Orchard cooperative handbook"
DOCX_PARAGRAPHS = [
    "The Brennick orchard cooperative was founded by eleven growers in 1987.",
    "Members deliver their apples to the packing hall in Lower Brennick every Tuesday.",
    "The cooperative's chairwoman is Olwen Tasker, elected in 2021.",
]
DOCX_QUESTION = "Who is the chairwoman of the Brennick orchard cooperative?"
DOCX_ANSWER = "Olwen Tasker"

HTML_QUESTION = "How many cars a day are expected to cross the new Kettle river bridge?"
HTML_ANSWER = "9,000"
HTML_NAV = "Subscribe to the Kettle Valley Times newsletter for weekly updates"
HTML_FOOTER = "Copyright 2024 Kettle Valley Times Media Group, registered in Ontario"
HTML_PAGE = f"""<!doctype html>
<html><head><title>Kettle Valley opens a new bridge | Kettle Valley Times</title>
<meta name="author" content="Jane Roe"><meta name="date" content="2024-03-02">
<script>window.__pwned = 'script'; document.title = 'pwned';</script>
<style>body {{ color: red }}</style></head>
<body onload="window.__pwned = 'onload'">
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li></ul>
<p>{HTML_NAV}</p></nav>
<article>
<h1>Kettle Valley opens a new bridge</h1>
<p onclick="window.__pwned = 'click'">The new bridge over the Kettle river was opened on Monday by mayor Ann Hollis.
It cost 12 million dollars and took three years to build.</p>
<p>Traffic engineers expect 9,000 cars a day to cross the new bridge, twice as many as the old ferry carried.</p>
<img src="x" onerror="window.__pwned = 'img'">
</article>
<aside><h3>Most read</h3><ul><li><a href="/a">Council approves the budget</a></li></ul></aside>
<footer><p>{HTML_FOOTER}</p><p>Contact us at news@example.com</p></footer>
<script>document.write('injected');</script>
</body></html>
"""


def make_pdf(pages=PDF_PAGES, *, filler: int = 0) -> bytes:
    """A PDF with one heading and paragraph per page (``filler`` more sentences each)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    for heading, body in pages:
        pdf.add_page()
        pdf.set_font("helvetica", "B", 16)
        pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        extra = " ".join(f"Filler sentence number {i} describes routine matters of no interest." for i in range(filler))
        pdf.multi_cell(0, 6, f"{body} {extra}".strip(), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def make_pdf_with_javascript(text: str, script: str) -> bytes:
    """A one-page PDF whose catalog runs ``script`` when a viewer opens it (/OpenAction /JavaScript),
    written by hand: fpdf2 does not write scripts."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        f"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS ({script}) >> >>".encode("latin-1"),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_docx(title: str = DOCX_TITLE, paragraphs=DOCX_PARAGRAPHS) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = "Mel Arden"
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    table = document.add_table(rows=2, cols=2)
    for row, (key, value) in zip(table.rows, [("Members", "64"), ("Packing days", "Tuesday")]):
        row.cells[0].text, row.cells[1].text = key, value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip_as_docx() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.exe", b"MZ" + bytes(100))
        archive.writestr("readme.txt", "not a word document")
    return out.getvalue()
