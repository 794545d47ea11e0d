"""The models and what runs them: ONNX Runtime sessions, the embedders, the reader, their exports; the
weights are the folders beside these modules, each with its model card."""
