"""Getting documents in: file converters (``converters/``, one module per format) and the document
library of a running chatbot (``documents``: upload, list, remove, incremental indexing)."""
