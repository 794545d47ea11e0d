"""The faces over the library: command line, web chat, HTTP API, LangChain retriever."""
