"""Developer tools: training, conversion, export, evaluation, benchmarks, the answer policy's fit.

Nothing that answers a question imports them."""
