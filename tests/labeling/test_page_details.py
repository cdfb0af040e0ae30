"""Small things a new admin tripped over on the manage pages (issue 9, item 22)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse

from labeling import services
from labeling.models import LabelSchema
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def question(name: str, title: str) -> LabelSchema:
    return services.save_label_schema(schema=LabelSchema(name=name, type="feedback", title=title, input_type="text"))


def titles_in_order(body: str, titles: list[str]) -> list[str]:
    return sorted(titles, key=body.index)


def test_session_form_labels_reviewers_and_leads_above_their_lists(admin: Client) -> None:
    User.objects.create_user("dr_lee", password="pw-123456")
    body = admin.get(reverse("labeling:session_create")).content.decode()
    for label, list_id in (("Reviewers", "id_reviewers"), ("Leads", "id_leads")):
        block = re.search(
            rf'<fieldset class="field choice-list">\s*<legend>{label}</legend>\s*<div id="{list_id}"', body
        )
        assert block, f"{label} is not the legend right above its list"
    assert "dr_lee</label>" in body and "</div> Reviewers</label>" not in body


def test_session_form_lists_the_session_questions_first_in_their_order(admin: Client, admin_user: User) -> None:
    apple, banana, cherry = question("a_q", "Apple?"), question("b_q", "Banana?"), question("c_q", "Cherry?")
    question("z_q", "Aardvark?")  # not in the session
    session = services.create_labeling_session(name="Order", schemas=[cherry, apple, banana], created_by=admin_user)
    body = admin.get(reverse("labeling:session_edit", args=[session.pk])).content.decode()
    titles = ["Apple?", "Banana?", "Cherry?", "Aardvark?"]
    assert titles_in_order(body, titles) == ["Cherry?", "Apple?", "Banana?", "Aardvark?"]
    numbers = re.findall(r'name="schema_\d+" value="(\d+)"', body)
    assert numbers == ["1", "2", "3"]  # 1, 2, 3 from the top, not scattered
    new = admin.get(reverse("labeling:session_create")).content.decode()
    assert titles_in_order(new, titles)[:4] == ["Aardvark?", "Apple?", "Banana?", "Cherry?"]  # by title


def test_question_form_options_box_shows_an_instruction_not_sample_options(admin: Client) -> None:
    body = admin.get(reverse("labeling:schema_create")).content.decode()
    options = re.search(r"<textarea[^>]*name=\"options\"[^>]*>", body)
    assert options is not None
    assert 'placeholder="Type one option per line"' in options.group(0)
    assert "very helpful\nsomewhat helpful" not in body
    assert "for example “very helpful”, “somewhat helpful”, “not helpful”" in body
    assert '<div class="form-grid two">' in body  # Type and Answer kind get half the width each, not cut off


def test_add_traces_offers_no_button_when_nothing_is_left_to_add(admin: Client) -> None:
    session = services.create_labeling_session(name="Full")
    traces = [make_trace(name="billing") for _ in range(2)]
    url = reverse("labeling:session_add_traces", args=[session.pk])
    assert "Add all 2 traces</button>" in admin.get(url, {"name": "billing"}).content.decode()
    services.add_traces_to_session(session=session, trace_ids=[traces[0].trace_id])
    assert "Add 1 trace</button>" in admin.get(url, {"name": "billing"}).content.decode()
    services.add_traces_to_session(session=session, trace_ids=[traces[1].trace_id])
    full = admin.get(url, {"name": "billing"}).content.decode()
    preview = full[full.index('<section id="preview"') : full.index("</section>", full.index('<section id="preview"'))]
    assert "Add all 0" not in preview and "<button" not in preview
    assert "Nothing to add: every matching trace is already in this session." in full
    none = admin.get(url, {"name": "no-such-trace"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<button" not in none and "No trace matches these filters." in none


def test_pages_link_a_favicon_that_exists(admin: Client) -> None:
    body = admin.get(reverse("labeling:my_sessions")).content.decode()
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', body)
    assert link and link.group(1) == static("favicon.svg")
    path = finders.find("favicon.svg")
    assert path and Path(path).read_text().startswith("<svg")


def test_no_template_uses_the_info_glyph_some_fonts_lack() -> None:
    """ⓘ renders as an empty box in Debian's chromium; the dashboard uses the .info-dot span instead."""
    templates = Path(settings.BASE_DIR) / "templates"
    offenders = [
        str(path.relative_to(templates))
        for path in templates.rglob("*.html")
        if re.search(r"ⓘ|&#9432;|&#x24d8;", path.read_text(), re.IGNORECASE)
    ]
    assert offenders == []
