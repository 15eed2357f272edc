"""Statements reused across requests: each runs with the values it is given, and a statement that would keep a
value of the call that built it is refused when it is built."""

import pytest
from sqlalchemy import bindparam, create_engine, func, literal_column, select

from memsvc.core.db import Statements, sqlalchemy_url

NUMBERS = func.generate_series(literal_column("1"), literal_column("4")).table_valued("n").render_derived()


def test_a_reused_statement_runs_with_each_calls_values(database_url):
    statements = Statements()
    built: list[int] = []

    def build():  # a statement built with the first call's value in it
        built.append(1)
        return select(NUMBERS.c.n).where(NUMBERS.c.n >= bindparam("bound", 3)).order_by(NUMBERS.c.n)

    with create_engine(sqlalchemy_url(database_url)).connect() as conn:
        assert list(statements.execute(conn, "at_least", build, {"bound": 3}).scalars()) == [3, 4]
        assert list(statements.execute(conn, "at_least", build, {"bound": 2}).scalars()) == [2, 3, 4]
    assert built == [1]


def test_a_statement_with_a_value_not_given_by_name_is_refused(database_url):
    statements = Statements()
    with create_engine(sqlalchemy_url(database_url)).connect() as conn:
        with pytest.raises(ValueError, match="param_1"):
            # .limit(2) binds an unnamed parameter: reused, the 2 would stay in the statement whatever was asked
            statements.execute(conn, "limited", lambda: select(NUMBERS.c.n).limit(2), {})
        with pytest.raises(ValueError, match="unused"):
            unfiltered = select(NUMBERS.c.n).where(NUMBERS.c.n > literal_column("1"))
            statements.execute(conn, "extra", lambda: unfiltered, {"unused": 1})
