from django.db import migrations

BUILTIN = [
    {
        "name": "expected_response",
        "type": "expectation",
        "title": "What should the ideal response be?",
        "instruction": "Write the response the assistant should have given.",
        "input_type": "text",
    },
    {
        "name": "expected_facts",
        "type": "expectation",
        "title": "Which facts must a correct response contain?",
        "instruction": "One fact per line.",
        "input_type": "text_list",
    },
    {
        "name": "guidelines",
        "type": "expectation",
        "title": "Which guidelines should the response follow?",
        "instruction": "One guideline per line, e.g. “Cite the policy document”.",
        "input_type": "text_list",
    },
]


def create_builtin(apps, schema_editor):
    LabelSchema = apps.get_model("labeling", "LabelSchema")
    for spec in BUILTIN:
        LabelSchema.objects.get_or_create(name=spec["name"], defaults={**spec, "builtin": True})


def remove_builtin(apps, schema_editor):
    apps.get_model("labeling", "LabelSchema").objects.filter(builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [("labeling", "0001_initial")]
    operations = [migrations.RunPython(create_builtin, remove_builtin)]
