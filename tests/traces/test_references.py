from django.contrib.auth.models import AnonymousUser, User

from traces.references import BIGINT_MAX, acting_user, pk_from_text


def test_pk_from_text_accepts_only_a_positive_64_bit_id() -> None:
    assert pk_from_text("42") == 42
    assert pk_from_text(" 7 ") == 7
    assert pk_from_text(str(BIGINT_MAX)) == BIGINT_MAX
    for text in ("", "0", "-1", "+1", "1.0", "1e3", "abc", "١٢", str(BIGINT_MAX + 1), "9" * 40, "4\x002"):
        assert pk_from_text(text) is None, text


def test_acting_user_drops_anonymous_and_missing_users() -> None:
    user = User(username="ana")
    assert acting_user(user) is user
    assert acting_user(AnonymousUser()) is None
    assert acting_user(None) is None
