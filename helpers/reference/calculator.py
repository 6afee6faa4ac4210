"""The finished calculator of lesson 03."""

from __future__ import annotations

import grpc

from helpers import protos

calculator_pb2, calculator_pb2_grpc = protos.load("calculator")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def in_int32(value: int, context: grpc.ServicerContext, operation: str) -> int:
    """Return `value`, or abort with INVALID_ARGUMENT when it does not fit in an int32.

    Not OUT_OF_RANGE: gRPC's status-code guide keeps that for a request that may succeed
    once the system's state changes (reading past the current end of a file). No state
    of this server makes these operands' result fit.
    """
    if not INT32_MIN <= value <= INT32_MAX:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{operation} result {value} does not fit in int32 [{INT32_MIN}, {INT32_MAX}]",
        )
    return value


class Calculator(calculator_pb2_grpc.CalculatorServicer):
    """The lesson 03 calculator, finished: checked arithmetic on int32.

    It echoes the caller's `x-request-id` metadata back in its trailing metadata.
    """

    def _echo_request_id(self, context: grpc.ServicerContext) -> None:
        for key, value in context.invocation_metadata():
            if key == "x-request-id":
                context.set_trailing_metadata([("x-request-id", value)])

    def Add(self, request, context):
        self._echo_request_id(context)
        result = in_int32(request.a + request.b, context, "Add")
        return calculator_pb2.AddReply(result=result)

    def Subtract(self, request, context):
        self._echo_request_id(context)
        result = in_int32(request.a - request.b, context, "Subtract")
        return calculator_pb2.SubtractReply(result=result)

    def Multiply(self, request, context):
        self._echo_request_id(context)
        result = in_int32(request.a * request.b, context, "Multiply")
        return calculator_pb2.MultiplyReply(result=result)

    def Divide(self, request, context):
        self._echo_request_id(context)
        if request.b == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot divide by zero (b is 0)")
        return calculator_pb2.DivideReply(result=request.a / request.b)
