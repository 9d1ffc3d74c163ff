"""The model-side layer every study shares: hooks, what heads and neurons contribute, batching, generation, the judge, statistics, verdicts."""
