"""The check on a SQL audience's query: one plain, read-only SELECT calling only allowed functions.

The query is parsed by PostgreSQL's own grammar (libpg_query, through ``pglast``), so what is
checked is what the server would run: no quoting trick (``E'\\''``, ``$$...$$``, comments) can
hide a second statement from it. docs/sql-audiences.md gives the rules and the reasons.
"""

from __future__ import annotations

import re

from pglast import ast, parse_sql
from pglast.enums import LockClauseStrength
from pglast.parser import ParseError
from pglast.visitors import Ancestor, Visitor

SEE_DOCS = "see docs/sql-audiences.md"

ALLOWED_FUNCTIONS: dict[str, frozenset[str]] = {
    "aggregate": frozenset(
        {"count", "sum", "min", "max", "avg", "bool_and", "bool_or", "every", "array_agg"}
        | {"string_agg"}
    ),
    "window": frozenset(
        {"row_number", "rank", "dense_rank", "lag", "lead", "first_value", "last_value"}
    ),
    "string": frozenset(
        {"lower", "upper", "length", "char_length", "character_length", "btrim", "ltrim"}
        | {"rtrim", "substr", "substring", "position", "strpos", "left", "right", "replace"}
        | {"concat", "concat_ws", "split_part", "starts_with", "md5"}
    ),
    "maths": frozenset({"abs", "round", "floor", "ceil", "ceiling", "mod", "trunc"}),
    "date and time": frozenset(
        {"now", "date_trunc", "date_part", "extract", "age", "make_interval", "make_date"}
        | {"to_timestamp", "to_char", "to_date", "timezone"}
    ),
    "json": frozenset(
        {"jsonb_extract_path", "jsonb_extract_path_text", "jsonb_array_length", "jsonb_typeof"}
        | {"json_extract_path", "json_extract_path_text", "json_array_length", "json_typeof"}
    ),
    "array": frozenset({"array_length", "cardinality", "unnest"}),
}
"""The functions a query may call, by kind: no side effects, cheap per row, same answer on the
same data. Anything else is refused, so a new function is a reviewed addition here and in
docs/sql-audiences.md; ``random`` (a different audience on every retry) and ``generate_series``
(``generate_series(1, 1e12)`` holds the server) are left out on purpose."""

ALLOWED_TYPES = frozenset(
    {"text", "varchar", "bpchar", "int2", "int4", "int8", "numeric", "float4", "float8"}
    | {"bool", "date", "time", "timetz", "timestamp", "timestamptz", "interval"}
    | {"json", "jsonb", "uuid"}
)
"""Built-in types a query may name (casts, typed literals), by their internal names
(``integer`` is ``int4``). A cast between built-in types is built in; a cast to any other type
may run a function its owner wrote (CREATE CAST ... WITH FUNCTION), and reg* casts look names
up in the system catalogs."""

_FUNCTIONS = frozenset().union(*ALLOWED_FUNCTIONS.values())

# system catalogs hold roles, password hashes, other sessions' queries: never an audience
_SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})

# nested in a SELECT, these can only be data-modifying WITH queries
_WRITES = {
    ast.DeleteStmt: "DELETE",
    ast.InsertStmt: "INSERT",
    ast.UpdateStmt: "UPDATE",
    ast.MergeStmt: "MERGE",
}

_LOCKS = {
    LockClauseStrength.LCS_FORKEYSHARE: "FOR KEY SHARE",
    LockClauseStrength.LCS_FORSHARE: "FOR SHARE",
    LockClauseStrength.LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE",
    LockClauseStrength.LCS_FORUPDATE: "FOR UPDATE",
}

# statement classes whose class name does not read as their SQL
_STATEMENT_NAMES = {
    ast.CreateStmt: "CREATE TABLE",
    ast.IndexStmt: "CREATE INDEX",
    ast.ViewStmt: "CREATE VIEW",
    ast.VariableSetStmt: "SET",
    ast.VariableShowStmt: "SHOW",
}


def check_sql(query: str) -> str:
    """Return ``query`` if it is one read-only ``SELECT`` that calls only allowed functions.

    Raises ``ValueError`` with a one-line reason naming what was found otherwise.
    """
    # libpg_query reads a C string: after a NUL it would see nothing, the server something else
    if "\0" in query:
        raise ValueError("must not contain NUL characters")
    try:
        statements = parse_sql(query)
    except ParseError as error:
        raise ValueError(f"is not valid SQL: {error}") from None
    if not statements:
        raise ValueError("must be a single statement, found none")
    if len(statements) > 1:
        found = ", ".join(statement_name(raw.stmt) for raw in statements)
        raise ValueError(f"must be a single statement, found {len(statements)} ({found})")
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        raise ValueError(f"must be a SELECT, found {statement_name(statement)}")
    _SelectChecker()(statement)
    return query


def statement_text(query: str) -> str:
    """The one statement of a checked ``query``, without its ``;`` and trailing comments, so
    it can be wrapped as a subquery."""
    raw = parse_sql(query)[0]
    start = raw.stmt_location or 0
    return query[start : start + raw.stmt_len] if raw.stmt_len else query[start:]


def statement_name(statement: ast.Node | None) -> str:
    """A readable name for a parsed statement: ``DROP TABLE``, ``CREATE TABLE AS``, ``BEGIN``."""
    if isinstance(statement, ast.DropStmt) and statement.removeType is not None:
        return "DROP " + statement.removeType.name.removeprefix("OBJECT_").replace("_", " ")
    if isinstance(statement, ast.TransactionStmt) and statement.kind is not None:
        return statement.kind.name.removeprefix("TRANS_STMT_").replace("_", " ")
    named = _STATEMENT_NAMES.get(type(statement))
    if named is not None:
        return named
    words = re.findall(r"[A-Z][a-z]*", type(statement).__name__.removesuffix("Stmt"))
    return " ".join(words).upper() or "nothing"


def _names(parts: tuple[object, ...] | None) -> tuple[str, ...]:
    """The dotted name a parser name list spells, such as ``("pg_catalog", "lower")``."""
    return tuple(part.sval or "" for part in parts or () if isinstance(part, ast.String))


def _builtin(names: tuple[str, ...]) -> str | None:
    """The bare name if ``names`` is unqualified or in ``pg_catalog``; else ``None``."""
    if len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog"):
        return names[-1]
    return None


class _SelectChecker(Visitor):
    """Walks every node of a SELECT, subqueries and WITH queries included, and raises
    ``ValueError`` at the first one the rules refuse (pglast calls ``visit_<NodeClass>``)."""

    def visit(self, ancestors: Ancestor, node: ast.Node) -> None:
        # a statement inside a SELECT other than the four writes cannot parse today; refuse
        # any a later grammar adds instead of letting it through unchecked
        name = type(node).__name__
        if name.endswith("Stmt") and not isinstance(node, ast.SelectStmt):
            raise ValueError(f"{statement_name(node)} inside a SELECT is not allowed")

    def visit_DeleteStmt(self, ancestors: Ancestor, node: ast.DeleteStmt) -> None:
        self._write(node)

    def visit_InsertStmt(self, ancestors: Ancestor, node: ast.InsertStmt) -> None:
        self._write(node)

    def visit_UpdateStmt(self, ancestors: Ancestor, node: ast.UpdateStmt) -> None:
        self._write(node)

    def visit_MergeStmt(self, ancestors: Ancestor, node: ast.MergeStmt) -> None:
        self._write(node)

    def visit_LockingClause(self, ancestors: Ancestor, node: ast.LockingClause) -> None:
        lock = _LOCKS.get(node.strength or LockClauseStrength.LCS_NONE, "a locking clause")
        raise ValueError(f"{lock} is not allowed")

    def visit_IntoClause(self, ancestors: Ancestor, node: ast.IntoClause) -> None:
        raise ValueError("SELECT INTO is not allowed")

    def visit_FuncCall(self, ancestors: Ancestor, node: ast.FuncCall) -> None:
        names = _names(node.funcname)
        if _builtin(names) not in _FUNCTIONS:
            raise ValueError(f"function {'.'.join(names)} is not allowed (allowed: {SEE_DOCS})")

    def visit_TypeName(self, ancestors: Ancestor, node: ast.TypeName) -> None:
        names = _names(node.names)
        if _builtin(names) not in ALLOWED_TYPES:
            raise ValueError(f"type {'.'.join(names)} is not allowed (allowed: {SEE_DOCS})")

    def visit_RangeVar(self, ancestors: Ancestor, node: ast.RangeVar) -> None:
        # pg_catalog is searched first, so an unqualified pg_* name is a system catalog too
        relation = node.relname or ""
        if node.schemaname in _SYSTEM_SCHEMAS or (
            node.schemaname is None and relation.startswith("pg_")
        ):
            table = ".".join(filter(None, (node.schemaname, relation)))
            raise ValueError(f"table {table} is not allowed (system catalogs are not audiences)")

    def visit_A_Expr(self, ancestors: Ancestor, node: ast.A_Expr) -> None:
        # OPERATOR(myschema.===) runs whatever function its owner bound to it
        names = _names(node.name)
        if len(names) > 1 and names[0] != "pg_catalog":
            raise ValueError(f"operator {'.'.join(names)} is not allowed (only built-in ones)")

    def visit_RangeTableSample(self, ancestors: Ancestor, node: ast.RangeTableSample) -> None:
        # like random(): the audience would differ between runs and retries
        raise ValueError("TABLESAMPLE is not allowed (audiences must be reproducible)")

    def visit_ParamRef(self, ancestors: Ancestor, node: ast.ParamRef) -> None:
        raise ValueError(f"parameter ${node.number} is not allowed (the query gets no arguments)")

    @staticmethod
    def _write(node: ast.Node) -> None:
        raise ValueError(f"data-modifying WITH ({_WRITES[type(node)]}) is not allowed")
