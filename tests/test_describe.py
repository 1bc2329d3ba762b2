"""retries.describe, the one helper that turns an exception into a message's text: the text of
a DuckDB error that quotes bytes that are not valid UTF-8, whichever Python 3.11+ runs it."""

import ctypes

import duckdb
import pytest

from shardsql.errors import describe, unexpected

# What DuckDB 2.0 says when a cast meets such bytes (quoting them), as bytes.
MESSAGE = (
    b'Conversion Error: Invalid byte encountered in STRING -> BLOB conversion of string "caf\xc3". All non-ascii '
    b"characters must be escaped with hex codes (e.g. \\xAA) when casting from source column text\n\n"
    b"LINE 1: SELECT text::BLOB AS b FROM source"
)
BAD = MESSAGE.index(b"\xc3")
# The two things a C extension's `PyErr_SetString(error, MESSAGE)` raises: before Python 3.11.5 the
# error with no message (the message, not decodable, is dropped); since (CPython gh-107915) a
# UnicodeDecodeError holding the message's bytes.
DROPPED = duckdb.ConversionException()
UNDECODABLE = UnicodeDecodeError("utf-8", MESSAGE, BAD, BAD + 1, "invalid continuation byte")


def raised_from_c(error: type[BaseException], message: bytes) -> BaseException:
    """What this interpreter raises when C code reports `error` with `message`, as DuckDB does."""
    set_string = ctypes.pythonapi.PyErr_SetString
    set_string.argtypes, set_string.restype = [ctypes.py_object, ctypes.c_char_p], None
    with pytest.raises(BaseException) as info:
        set_string(error, message)
    return info.value


def test_a_dropped_duckdb_message_is_said_to_be_invalid_utf8_not_just_a_class_name():
    assert describe(DROPPED) == (
        "ConversionException (DuckDB's message was not valid UTF-8, as it quotes such bytes, "
        "and Python 3.11.4 or older drops such a message)"
    )


def test_an_undecodable_duckdb_message_is_shown_with_the_bad_bytes_escaped():
    assert describe(UNDECODABLE) == (
        'Conversion Error: Invalid byte encountered in STRING -> BLOB conversion of string "caf\\xc3". All '
        "non-ascii characters must be escaped with hex codes (e.g. \\xAA) when casting from source column text "
        "(the message holds bytes that are not valid UTF-8, shown as \\xNN)"
    )


def test_this_python_raises_one_of_the_two_and_it_is_described():
    exc = raised_from_c(duckdb.ConversionException, MESSAGE)
    assert type(exc) in (type(DROPPED), type(UNDECODABLE)) and exc.args in (DROPPED.args, UNDECODABLE.args)
    assert "not valid UTF-8" in describe(exc)


class BrokenStr(Exception):
    def __str__(self):
        raise ValueError("no text")


def test_other_errors_give_their_first_line_or_their_type():
    assert describe(ValueError("first line\nsecond")) == "first line"
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(BrokenStr()) == "BrokenStr"
    # A UnicodeDecodeError of data (not of a message) keeps Python's own text.
    assert describe(UnicodeDecodeError("utf-8", b"caf\xc3", 3, 4, "x")).startswith("'utf-8' codec can't decode")


def test_unexpected_errors_name_their_type_once():
    hint = "(shardsql --debug COMMAND ... shows the traceback; please report it)"
    assert unexpected(ValueError("bad value")) == f"unexpected ValueError: bad value {hint}"
    assert unexpected(KeyError()) == f"unexpected KeyError {hint}"
    assert unexpected(DROPPED).startswith("unexpected ConversionException (DuckDB's message was not valid UTF-8")
    assert unexpected(UNDECODABLE).startswith("unexpected UnicodeDecodeError: Conversion Error: Invalid byte")
