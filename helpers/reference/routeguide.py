"""The route guide of lesson 06: a dataset the course makes, its geometry, a finished servicer.

    features = make_features()            # the same 100 features on every run
    feature_at(features, point)           # the feature at a point, or None
    in_rectangle(point, rectangle)        # is the point inside (edges included)?
    distance_m(a, b)                      # great-circle distance in metres

Coordinates are E7 degrees, as in `protos/routeguide.proto`: degrees times 10**7,
as integers. The dataset is made by a seeded random generator, so no download is
needed and every run sees the same features.
"""

from __future__ import annotations

import math
import random
import time
from typing import Iterable, Iterator

import grpc

from helpers import protos

routeguide_pb2, routeguide_pb2_grpc = protos.load("routeguide")

E7 = 10**7
EARTH_RADIUS_M = 6_371_000

# The area of the classic route guide's data set: a one-degree square in New Jersey.
AREA = routeguide_pb2.Rectangle(
    lo=routeguide_pb2.Point(latitude=400_000_000, longitude=-750_000_000),
    hi=routeguide_pb2.Point(latitude=410_000_000, longitude=-740_000_000),
)

_FIRST = ["Cedar", "Maple", "Mill", "Stone", "Fox", "Lake", "Pine", "Oak", "River", "Bell"]
_SECOND = ["Hill", "Pond", "Bridge", "Farm", "Chapel", "Crossing", "Park", "Tower", "Falls"]


def make_features(count: int = 100, seed: int = 6) -> list:
    """`count` features with distinct names and locations inside AREA, the same for a given seed."""
    rng = random.Random(seed)
    names = [f"{first} {second}" for first in _FIRST for second in _SECOND]
    rng.shuffle(names)
    features, seen = [], set()
    while len(features) < count:
        lat = rng.randrange(AREA.lo.latitude, AREA.hi.latitude + 1, 1000)
        lng = rng.randrange(AREA.lo.longitude, AREA.hi.longitude + 1, 1000)
        if (lat, lng) in seen:
            continue
        seen.add((lat, lng))
        # After the 90 base names, add a number: "Cedar Hill 2".
        name = names[len(features) % len(names)]
        if len(features) >= len(names):
            name = f"{name} {len(features) // len(names) + 1}"
        location = routeguide_pb2.Point(latitude=lat, longitude=lng)
        features.append(routeguide_pb2.Feature(name=name, location=location))
    return features


def valid_point(point) -> bool:
    """True when latitude is within +-90 degrees and longitude within +-180 (in E7)."""
    return abs(point.latitude) <= 90 * E7 and abs(point.longitude) <= 180 * E7


def feature_at(features: Iterable, point):
    """The feature at exactly `point`, or None."""
    for feature in features:
        if feature.location == point:
            return feature
    return None


def in_rectangle(point, rectangle) -> bool:
    """True when `point` is inside `rectangle`, edges included; corners may come in any order."""
    lo, hi = rectangle.lo, rectangle.hi
    return (min(lo.latitude, hi.latitude) <= point.latitude <= max(lo.latitude, hi.latitude)
            and min(lo.longitude, hi.longitude) <= point.longitude
            <= max(lo.longitude, hi.longitude))


def distance_m(a, b) -> float:
    """Great-circle distance between two points in metres (the haversine formula)."""
    lat1, lat2 = math.radians(a.latitude / E7), math.radians(b.latitude / E7)
    dlat = lat2 - lat1
    dlng = math.radians((b.longitude - a.longitude) / E7)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def point_problem(point, what: str = "point") -> str | None:
    """What is wrong with `point` as a position, or None when it is valid."""
    if valid_point(point):
        return None
    return (f"{what} ({point.latitude}, {point.longitude}) is not a valid position: latitude "
            "must be within +-900000000 and longitude within +-1800000000 (E7 degrees)")


def rectangle_problem(rectangle) -> str | None:
    """What is wrong with `rectangle` (a missing or invalid corner), or None."""
    for corner in ("lo", "hi"):
        if not rectangle.HasField(corner):
            return f"the rectangle has no {corner} corner"
        problem = point_problem(getattr(rectangle, corner), f"corner {corner}")
        if problem:
            return problem
    return None


def require_valid_point(point, context: grpc.ServicerContext, what: str = "point") -> None:
    """Abort the call with INVALID_ARGUMENT unless `point` is a valid position (sync servers)."""
    problem = point_problem(point, what)
    if problem:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)


def require_rectangle(rectangle, context: grpc.ServicerContext) -> None:
    """Abort with INVALID_ARGUMENT unless both corners are set and valid (sync servers).

    In a grpc.aio servicer, use `rectangle_problem` with `await context.abort(...)`.
    """
    problem = rectangle_problem(rectangle)
    if problem:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)


class RouteGuide(routeguide_pb2_grpc.RouteGuideServicer):
    """The finished route guide of lesson 06 (sync), over a list of features."""

    def __init__(self, features: Iterable | None = None) -> None:
        self.features = list(make_features() if features is None else features)

    def GetFeature(self, request, context):
        require_valid_point(request, context)
        found = feature_at(self.features, request)
        return found if found is not None else routeguide_pb2.Feature(location=request)

    def ListFeatures(self, request, context) -> Iterator:
        require_rectangle(request, context)
        for feature in self.features:
            if in_rectangle(feature.location, request):
                yield feature

    def RecordRoute(self, request_iterator, context):
        point_count = feature_count = 0
        distance = 0.0
        previous = first_at = last_at = None
        for point in request_iterator:
            require_valid_point(point, context)
            last_at = time.monotonic()
            if first_at is None:
                first_at = last_at  # elapsed_time runs from the first point to the last
            point_count += 1
            if feature_at(self.features, point) is not None:
                feature_count += 1
            if previous is not None:
                distance += distance_m(previous, point)
            previous = point
        return routeguide_pb2.RouteSummary(
            point_count=point_count, feature_count=feature_count,
            distance=int(distance),
            elapsed_time=int(last_at - first_at) if point_count else 0)

    def RouteChat(self, request_iterator, context) -> Iterator:
        notes: list = []  # the notes of this call; each call has its own
        for note in request_iterator:
            require_valid_point(note.location, context, "note location")
            for earlier in notes:
                if earlier.location == note.location:
                    yield earlier
            notes.append(note)
