"""Python client for the review app's JSON API, in MLflow 3's vocabulary.

import reviewapp_client
reviewapp_client.configure(url="https://reviews.example.com", token="…")  # or REVIEWAPP_URL / REVIEWAPP_TOKEN
"""

from ._http import ApiClient, configure, get_client
from .errors import ReviewAppError

__version__ = "0.1.0"

__all__ = ["ApiClient", "ReviewAppError", "__version__", "configure", "get_client"]
