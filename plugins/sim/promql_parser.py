"""The PromQL subset the simulator understands: a tokenizer and a recursive-descent parser.

Why hand-written: the same policy YAML must run against the sim and a real Prometheus,
so the sim needs *exactly* PromQL's syntax for the part it supports, and a clear error
naming the construct for the rest (``on()``, subqueries, ``histogram_quantile``...),
rather than a silently different answer. The grammar follows Prometheus 2.x:

    expr      := binary
    binary    := operand (binop ["bool"] operand)*        precedence climbing, ^ right-assoc
    operand   := ("-" | "+") binary(^) | postfix
    postfix   := primary ("[" duration "]" | "offset" duration)*
    primary   := number | string | "(" expr ")" | aggregation | call | selector
    aggregation := agg [by|without (labels)] "(" expr ")" [by|without (labels)]
    selector  := name ["{" matchers "}"] | "{" matchers "}"

Every node carries its PromQL type (scalar, vector, matrix, string), checked while
parsing so an ill-typed query fails before it is evaluated.
"""

from __future__ import annotations

import re

from .promql_ast import (FUNCTIONS, Aggregate, Binary, Call, Matcher, MatrixSelector, Node, NumberLiteral, PromQLError,
                         StringLiteral, Unary, VectorSelector)
from .promql_regex import compile_matcher_regex

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
AGGREGATIONS = {"sum", "avg", "max", "min", "count"}
UNSUPPORTED_AGGREGATIONS = {"stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio"}
PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
              "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
COMPARISONS = {"==", "!=", "<=", "<", ">=", ">"}
SET_OPERATORS = {"and", "or", "unless"}
_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![A-Za-z0-9_])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=])
  | (?P<punct>[(){}\[\],@:])
""", re.X)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise PromQLError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(("eof", "", len(text) + 1))
    return tokens


def parse_duration_ms(text: str) -> int:
    return sum(int(n) * UNITS_MS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))


def unquote(token: str) -> str:
    r"""A string literal's value, by Go's rules as Prometheus applies them.

    ``\a \b \f \n \r \t \v \\`` and the literal's own quote (``\"`` in ``"..."``,
    ``\'`` in ``'...'``, not the other one); ``\NNN`` (three octal digits, at most 255) and
    ``\xHH`` give one byte; ``\uHHHH`` and ``\UHHHHHHHH`` a code point (not a surrogate).
    Bytes that do not form UTF-8 stay undecodable (surrogate escapes), so they match no
    label value, as in Prometheus. A backtick string is raw."""
    quote = token[0]
    if quote == "`":
        return token[1:-1]
    body, out, i = token[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES or nxt == quote:
            out += _ESCAPES.get(nxt, nxt).encode()
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise PromQLError(f"invalid escape \\{nxt}{digits} in string {token}")
            value = int(digits, 16)
            if nxt != "x" and (value > 0x10FFFF or 0xD800 <= value < 0xE000):
                raise PromQLError(f"escape sequence \\{nxt}{digits} is an invalid Unicode code point in string {token}")
            out += bytes([value]) if nxt == "x" else chr(value).encode()
            i += 2 + width
        elif nxt in "01234567":
            digits = body[i + 1:i + 4]
            if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise PromQLError(f"invalid octal escape \\{digits} in string {token}")
            out.append(int(digits, 8))
            i += 4
        else:
            raise PromQLError(f"unknown escape sequence \\{nxt} in string {token}")
    return out.decode("utf-8", "surrogateescape")


class Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, tokenize(text), 0

    def parse(self) -> Node:
        node = self.binary(0)
        kind, value, pos = self.tokens[self.i]
        if kind != "eof":
            raise PromQLError(f"unexpected {value!r} at position {pos}")
        return node

    # --- token helpers --------------------------------------------------------------

    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self, kind: str, value: str | None = None) -> str:
        got_kind, got, pos = self.tokens[self.i]
        if got_kind != kind or (value is not None and got != value):
            wanted = repr(value) if value else kind
            found = f"got {got!r}" if got else "got end of query"
            raise PromQLError(f"expected {wanted} at position {pos}, {found}")
        self.i += 1
        return got

    def at(self, kind: str, value: str | None = None) -> bool:
        got_kind, got, _ = self.tokens[self.i]
        return got_kind == kind and (value is None or got == value)

    # --- expressions ----------------------------------------------------------------

    def binop(self) -> str | None:
        kind, value, _ = self.peek()
        if (kind == "op" and value in PRECEDENCE) or (kind == "ident" and value in ("and", "or", "unless", "atan2")):
            return value
        return None

    def binary(self, min_prec: int) -> Node:
        lhs = self.operand()
        while (op := self.binop()) is not None and PRECEDENCE[op] >= min_prec:
            self.i += 1
            if op == "atan2":
                raise PromQLError("the 'atan2' operator is not supported by the sim evaluator")
            return_bool = False
            if op in COMPARISONS and self.at("ident", "bool"):
                self.i += 1
                return_bool = True
            if self.at("ident") and self.peek()[1] in ("on", "ignoring", "group_left", "group_right"):
                raise PromQLError(f"vector matching with {self.peek()[1]}() is not supported by the sim evaluator")
            rhs = self.binary(PRECEDENCE[op] + (0 if op == "^" else 1))
            lhs = _binary(op, lhs, rhs, return_bool)
        return lhs

    def operand(self) -> Node:
        if self.at("op", "-") or self.at("op", "+"):
            sign = self.take("op")
            inner = self.binary(PRECEDENCE["^"])
            if inner.type not in ("scalar", "vector"):
                raise PromQLError(f"unary {sign} expects a scalar or an instant vector, got {inner.type}")
            if sign == "+":
                return inner
            if isinstance(inner, NumberLiteral):
                return NumberLiteral(-inner.value)
            return Unary(inner)
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.at("punct", "["):
                self.i += 1
                if not isinstance(node, VectorSelector):
                    raise PromQLError("subqueries and ranges of expressions are not supported; "
                                      "a range [..] must follow a metric selector")
                range_ms = parse_duration_ms(self.take("duration"))
                if self.at("punct", ":") or (self.at("ident") and self.peek()[1].startswith(":")):
                    raise PromQLError("subqueries ([range:step]) are not supported by the sim evaluator")
                self.take("punct", "]")
                node = MatrixSelector(node, range_ms)
            elif self.at("ident", "offset"):
                self.i += 1
                sign = -1 if self.at("op", "-") and self.take("op") else 1
                offset = sign * parse_duration_ms(self.take("duration"))
                if isinstance(node, VectorSelector):
                    node = VectorSelector(node.name, node.matchers, offset)
                elif isinstance(node, MatrixSelector):
                    node = MatrixSelector(VectorSelector(node.vector.name, node.vector.matchers, offset), node.range_ms)
                else:
                    raise PromQLError("offset must follow a metric selector")
            elif self.at("punct", "@"):
                raise PromQLError("the @ modifier is not supported by the sim evaluator")
            else:
                return node

    def primary(self) -> Node:
        kind, value, pos = self.peek()
        if kind == "number":
            self.i += 1
            return NumberLiteral(float(int(value, 16)) if value[:2] in ("0x", "0X") else float(value))
        if kind == "string":
            self.i += 1
            return StringLiteral(unquote(value))
        if kind == "duration":
            raise PromQLError(f"unexpected duration {value!r} at position {pos}")
        if kind == "punct" and value == "(":
            self.i += 1
            node = self.binary(0)
            self.take("punct", ")")
            return node
        if kind == "punct" and value == "{":
            return self.selector(None)
        if kind != "ident":
            raise PromQLError(f"unexpected {value!r} at position {pos}" if value else "unexpected end of query")
        if value.lower() in ("inf", "nan") and self.peek(1)[1] not in ("(", "{"):
            self.i += 1
            return NumberLiteral(float(value))
        if value in AGGREGATIONS or value in UNSUPPORTED_AGGREGATIONS:
            if self.peek(1)[1] in ("(", "by", "without"):
                return self.aggregation()
        if self.peek(1)[1] == "(" and self.peek(1)[0] == "punct":
            return self.call()
        self.i += 1
        return self.selector(value)

    def selector(self, name: str | None) -> VectorSelector:
        matchers: list[Matcher] = []
        if self.at("punct", "{"):
            self.i += 1
            while not self.at("punct", "}"):
                label = self.take("ident")
                op = self.take("op")
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"expected a label matcher operator (=, !=, =~, !~) after {label!r}, got {op!r}")
                if not self.at("string"):
                    raise PromQLError(f"expected a quoted string as the value of label {label!r}, got {self.peek()[1]!r}")
                text = unquote(self.take("string"))
                regex = None
                if op in ("=~", "!~"):
                    regex = compile_matcher_regex(text, label)
                matchers.append(Matcher(label, op, text, regex))
                if not self.at("punct", "}"):
                    self.take("punct", ",")
            self.i += 1
        if name is None and all(m.matches({}) for m in matchers):
            raise PromQLError("a vector selector must contain at least one matcher that does not match the empty string")
        return VectorSelector(name, tuple(matchers))

    def labels(self) -> tuple[str, ...]:
        self.take("punct", "(")
        names: list[str] = []
        while not self.at("punct", ")"):
            names.append(self.take("ident"))
            if not self.at("punct", ")"):
                self.take("punct", ",")
        self.i += 1
        return tuple(names)

    def aggregation(self) -> Node:
        op = self.take("ident")
        if op in UNSUPPORTED_AGGREGATIONS:
            raise PromQLError(f"the aggregation {op!r} is not supported by the sim evaluator")
        grouping, without, modifier = (), False, False
        if self.at("ident", "by") or self.at("ident", "without"):
            without, modifier = self.take("ident") == "without", True
            grouping = self.labels()
        self.take("punct", "(")
        expr = self.binary(0)
        if self.at("punct", ","):
            raise PromQLError(f"{op}() takes one argument")
        self.take("punct", ")")
        if self.at("ident", "by") or self.at("ident", "without"):
            if modifier:
                raise PromQLError(f"{op}() has two grouping clauses")
            without = self.take("ident") == "without"
            grouping = self.labels()
        if expr.type != "vector":
            raise PromQLError(f"expected an instant vector in aggregation {op}(), got {_type_name(expr.type)}")
        return Aggregate(op, expr, grouping, without)

    def call(self) -> Node:
        name = self.take("ident")
        if name not in FUNCTIONS:
            supported = ", ".join(sorted(FUNCTIONS))
            raise PromQLError(f"function {name!r} is not supported by the sim evaluator; supported: {supported}")
        self.take("punct", "(")
        args: list[Node] = []
        while not self.at("punct", ")"):
            args.append(self.binary(0))
            if not self.at("punct", ")"):
                self.take("punct", ",")
        self.i += 1
        wanted = FUNCTIONS[name][0]
        if len(args) != len(wanted):
            raise PromQLError(f"function {name!r} takes {len(wanted)} argument(s), got {len(args)}")
        for arg, kind in zip(args, wanted):
            if arg.type != kind:
                raise PromQLError(f"expected {_type_name(kind)} in call to function {name!r}, got {_type_name(arg.type)}")
        return Call(name, tuple(args))


def _binary(op: str, lhs: Node, rhs: Node, return_bool: bool) -> Node:
    for side in (lhs, rhs):
        if side.type not in ("scalar", "vector"):
            raise PromQLError(f"binary expression {op!r} must contain only scalars and instant vectors, "
                              f"got {_type_name(side.type)}")
    if op in SET_OPERATORS and not lhs.type == rhs.type == "vector":
        raise PromQLError(f"set operator {op!r} needs instant vectors on both sides")
    if op in COMPARISONS and lhs.type == rhs.type == "scalar" and not return_bool:
        raise PromQLError("comparisons between scalars must use the bool modifier")
    if return_bool and op not in COMPARISONS:
        raise PromQLError("bool modifier can only be used on comparison operators")
    return Binary(op, lhs, rhs, return_bool)


def _type_name(kind: str) -> str:
    return {"vector": "instant vector", "matrix": "range vector"}.get(kind, kind)

