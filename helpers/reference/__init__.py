"""Reference servicers: finished services for lessons that build on earlier ones.

A learner who skipped a lesson can still use its service from here. Every
servicer answers bad input with a deliberate status code, never UNKNOWN.
"""

from helpers.reference.calculator import (
    INT32_MAX,
    INT32_MIN,
    Calculator,
    calculator_pb2,
    calculator_pb2_grpc,
)
from helpers.reference.people import (
    PeopleDirectory,
    Person,
    people_pb2,
    people_pb2_grpc,
    person_pb2,
    sample_people,
)
from helpers.reference.users import (
    EmailTaken,
    UserService,
    UserStore,
    field_errors,
    users_pb2,
    users_pb2_grpc,
)

__all__ = [
    "INT32_MAX", "INT32_MIN", "Calculator", "calculator_pb2", "calculator_pb2_grpc",
    "PeopleDirectory", "Person", "people_pb2", "people_pb2_grpc", "person_pb2",
    "sample_people",
    "EmailTaken", "UserService", "UserStore", "field_errors", "users_pb2", "users_pb2_grpc",
]
