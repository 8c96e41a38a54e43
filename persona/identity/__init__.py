"""The identity core, owned by neither training nor the evals: the question and answer
phrasings, the held-out questions, the names of other assistants and of each base, the
unrelated prompts that measure leakage, and the judges of an answer. It imports only the card."""
