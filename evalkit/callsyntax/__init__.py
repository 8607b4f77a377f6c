"""Call-syntax families: recognise and recover tool calls that models write as text.

    scan(text, tools) -> Scan        every attempt (family, span, answer|reasoning, calls, broken)
    own_family(model, chat_template) the family a model writes natively (for server_parse_lost)
    FAMILIES                          THE table (families.py); fixtures in tests/fixtures/callsyntax/
"""

from .families import BY_NAME, FAMILIES, Family, own_family
from .model import Attempt, Location, Scan, Tools
from .scanner import scan

__all__ = ["Attempt", "BY_NAME", "FAMILIES", "Family", "Location", "Scan", "Tools", "own_family", "scan"]
