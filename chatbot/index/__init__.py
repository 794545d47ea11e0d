"""The index: FAISS vectors, passages and the extracted documents on disk (store), kept in step with the
corpus folder (sync)."""
