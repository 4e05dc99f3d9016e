"""Tasks outside any app's tasks module: a worker runs them only when named on its command
line."""

from tests.django_project.testapp.tasks import Run, task


@task
def extra(tag: str) -> None:
    Run.objects.create(tag=tag, task="extra")
