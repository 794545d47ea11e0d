"""Word documents (``.docx``): paragraphs and table rows in body order, by python-docx; title,
author and date from the document's properties."""

from __future__ import annotations

import io
import zipfile

from .base import ConversionError, Extracted

SUFFIXES = (".docx",)
# A .docx is a zip: the XML python-docx parses may unpack to at most this much (a zip bomb is refused).
MAX_UNPACKED_BYTES = 200 * 1024 * 1024


def convert(data: bytes) -> Extracted:
    import docx
    from docx.table import Table

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "word/document.xml" not in archive.namelist():
                raise ConversionError("not a Word document (a zip file without word/document.xml)")
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise ConversionError(f"refused: it unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB")
        document = docx.Document(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ConversionError("not a Word document (not a zip file; an old .doc? save it as .docx)") from None
    except ConversionError:
        raise
    except Exception as exc:  # python-docx's own errors for a malformed package
        raise ConversionError(f"unreadable Word document ({type(exc).__name__}: {exc})") from None
    lines = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                lines.append(" | ".join(dict.fromkeys(c for c in cells if c)))  # merged cells repeat
        else:
            lines.append(block.text.strip())
    text = "\n\n".join(line for line in lines if line)
    props = document.core_properties
    metadata = {k: v for k, v in (("author", props.author),
                                  ("date", props.created.date().isoformat() if props.created else None)) if v}
    return Extracted(text + "\n" if text else "", title=props.title or None, metadata=metadata)
