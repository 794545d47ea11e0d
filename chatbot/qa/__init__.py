"""Answering: the question made ready, retrieval, the sentence closeness, the answer policy and Chatbot."""
