"""LLM judges: MLflow's judges against one OpenAI-compatible endpoint (``JUDGE_*`` settings).

``endpoint`` maps the settings onto what MLflow reads and owns every HTTP request a judge makes
(deadline, retries, errors, secrets); ``builtin`` puts MLflow's built-in judges in the scorer catalogue.
"""
