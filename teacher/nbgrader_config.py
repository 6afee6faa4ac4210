"""nbgrader's configuration for this course.

`python -m helpers.build --nbgrader DIR` (or `make nbgrader`) copies this file to
DIR/nbgrader_config.py and reads POINTS from it: the points of each exercise's
check cell. Run nbgrader's commands inside DIR (see teacher/README.md).
"""

c = get_config()  # noqa: F821 (nbgrader provides get_config when it reads this file)

c.CourseDirectory.course_id = "grpc-python"

# Checks start real servers and wait with timeouts of their own; a loaded hub needs
# more than nbgrader's default 30 s per cell.
c.Execute.timeout = 300

# Points per exercise: DEFAULT_POINTS, unless POINTS names the exercise.
# Edit, then export again: the points are written into the check cells.
DEFAULT_POINTS = 1
POINTS = {
    # "3.5": 2,  # e.g. a lesson's closing challenge worth two points
}
