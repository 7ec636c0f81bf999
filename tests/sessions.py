"""What a test may find of a session dir once its daemon stopped or was cleaned up after."""
import os

from raylite._session import is_ended


def is_cleaned(session: str) -> bool:
    """Nothing of `session` is left but its logs/ (kept until the next head starts here)."""
    return not os.path.exists(session) or is_ended(session)
