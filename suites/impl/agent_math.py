"""Tool implementations for suites/agent_math.yaml: exact, deterministic arithmetic.

Plain functions named like the tools; evalkit calls them with the model's arguments as keyword
arguments and sends the JSON of the return value (or the text of a raised exception) back.
"""

from __future__ import annotations

import math

_MAX_PRIME_INPUT = 10**14  # trial division stays well under a second below this


def _number(value: object, name: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return value


def _tidy(result: int | float) -> int | float:
    """670592745.0 -> 670592745, so answers built from the result carry no stray '.0'."""
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result


def add_data(num1: float, num2: float) -> int | float:
    return _tidy(_number(num1, "num1") + _number(num2, "num2"))


def minus_data(num1: float, num2: float) -> int | float:
    return _tidy(_number(num1, "num1") - _number(num2, "num2"))


def multiply_data(num1: float, num2: float) -> int | float:
    return _tidy(_number(num1, "num1") * _number(num2, "num2"))


def divide_data(num1: float, num2: float) -> int | float:
    if _number(num2, "num2") == 0:
        raise ZeroDivisionError("cannot divide by zero")
    return _tidy(_number(num1, "num1") / num2)


def is_prime(n: int) -> dict:
    value = _number(n, "n")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"n must be a whole number, got {value}")
        value = int(value)
    if abs(value) > _MAX_PRIME_INPUT:
        raise ValueError(f"n is too large (limit {_MAX_PRIME_INPUT})")
    if value < 2:
        return {"n": value, "is_prime": False, "smallest_factor": None}
    for divisor in (2, 3):
        if value % divisor == 0:
            return {"n": value, "is_prime": value == divisor, "smallest_factor": None if value == divisor else divisor}
    divisor = 5
    while divisor * divisor <= value:
        for candidate in (divisor, divisor + 2):
            if value % candidate == 0:
                return {"n": value, "is_prime": False, "smallest_factor": candidate}
        divisor += 6
    return {"n": value, "is_prime": True, "smallest_factor": None}
