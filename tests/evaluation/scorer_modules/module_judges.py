"""A judge a team writes in its own scorer module with MLflow's ``make_judge`` (no endpoint of its own)."""

from mlflow.genai.judges import make_judge

polite = make_judge(
    name="polite",
    instructions="Is the response {{ outputs }} to {{ inputs }} polite? Answer yes or no.",
    model="openai:/judge-model",
    feedback_value_type=str,
)
