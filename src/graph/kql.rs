//! The KQL subset: a tokenizer (positions in line:column), a recursive-descent parser and the AST
//! it builds. Nothing here evaluates; `graph::eval` does. Every construct outside the subset is a
//! [`QueryError`] naming it and where it starts.

use serde_json::Value;

use super::{ErrorKind, Pos, QueryError};

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or a keyword (`where`, `project-away`, `!contains`, `in~`, `$left`).
    Ident(String),
    Str(String),
    Int(i64),
    Real(f64),
    /// A timespan literal, in seconds.
    Timespan(f64),
    /// Punctuation and symbolic operators.
    Sym(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

impl Token {
    /// The token as the query spelled it (near enough), for error messages.
    fn text(&self) -> String {
        match &self.tok {
            Tok::Ident(s) => s.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Int(n) => n.to_string(),
            Tok::Real(r) => r.to_string(),
            Tok::Timespan(t) => format!("{t}s"),
            Tok::Sym(s) => (*s).to_string(),
            Tok::Eof => "<end of query>".to_string(),
        }
    }
}

/// Symbols, longest first so that `==` wins over `=`.
const SYMBOLS: &[&str] = &[
    "==", "!=", "=~", "!~", "<=", ">=", "|", "(", ")", "[", "]", "{", "}", ",", ".", "=", "<", ">",
    "+", "-", "*", "/", "%", ";", ":",
];

/// Keywords spelled with a hyphen: `project` or `mv` joined to the word after the `-`.
const HYPHEN_HEADS: &[&str] = &["project", "mv", "make", "mv-apply"];

pub fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    // Moves past `n` characters, keeping line and column.
    let advance = |i: &mut usize, line: &mut u32, col: &mut u32, n: usize| {
        for _ in 0..n {
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column: col };
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, 1);
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                advance(&mut i, &mut line, &mut col, 1);
            }
            continue;
        }
        // Strings: '…', "…", and verbatim @'…' / @"…".
        let verbatim = c == '@' && matches!(chars.get(i + 1), Some('\'') | Some('"'));
        if c == '\'' || c == '"' || verbatim {
            let start = if verbatim { i + 1 } else { i };
            let quote = chars[start];
            let mut j = start + 1;
            let mut s = String::new();
            loop {
                match chars.get(j) {
                    None | Some('\n') => {
                        return Err(QueryError::new(
                            ErrorKind::Parse,
                            pos,
                            "'",
                            "the string literal is not closed on its line",
                        ))
                    }
                    Some(&ch) if ch == quote => {
                        j += 1;
                        break;
                    }
                    Some('\\') if !verbatim => {
                        let escaped = match chars.get(j + 1) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some(&other) => other,
                            None => '\\',
                        };
                        s.push(escaped);
                        j += 2;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        j += 1;
                    }
                }
            }
            out.push(Token { tok: Tok::Str(s), pos });
            let n = j - i;
            advance(&mut i, &mut line, &mut col, n);
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let mut real = false;
            if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                real = true;
                j += 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if matches!(chars.get(j), Some('e') | Some('E')) {
                let mut k = j + 1;
                if matches!(chars.get(k), Some('+') | Some('-')) {
                    k += 1;
                }
                if chars.get(k).is_some_and(char::is_ascii_digit) {
                    real = true;
                    j = k;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                }
            }
            let literal: String = chars[i..j].iter().collect();
            // Timespans: `7d`, `12h`, `30m`, `10s`, `250ms`.
            let mut k = j;
            while k < chars.len() && chars[k].is_ascii_alphabetic() {
                k += 1;
            }
            let unit: String = chars[j..k].iter().collect();
            let scale = match unit.as_str() {
                "d" => Some(86_400.0),
                "h" => Some(3_600.0),
                "m" => Some(60.0),
                "s" => Some(1.0),
                "ms" => Some(0.001),
                _ => None,
            };
            let boundary = !chars.get(k).is_some_and(|ch| ch.is_alphanumeric() || *ch == '_');
            if let (Some(scale), true, Ok(n)) = (scale, boundary, literal.parse::<f64>()) {
                out.push(Token { tok: Tok::Timespan(n * scale), pos });
                let n = k - i;
                advance(&mut i, &mut line, &mut col, n);
                continue;
            }
            if chars.get(j).is_some_and(|ch| ch.is_alphanumeric() || *ch == '_') {
                // Other units, hex and typed literals are outside the subset.
                let mut k = j;
                while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_') {
                    k += 1;
                }
                let word: String = chars[i..k].iter().collect();
                return Err(QueryError::new(
                    ErrorKind::Unsupported,
                    pos,
                    &word,
                    format!("the literal '{word}' is not supported (numbers and strings are)"),
                ));
            }
            let tok = if real {
                Tok::Real(literal.parse().map_err(|_| {
                    QueryError::new(ErrorKind::Parse, pos, &literal, "not a number")
                })?)
            } else {
                match literal.parse() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => Tok::Real(literal.parse().map_err(|_| {
                        QueryError::new(ErrorKind::Parse, pos, &literal, "not a number")
                    })?),
                }
            };
            out.push(Token { tok, pos });
            let n = j - i;
            advance(&mut i, &mut line, &mut col, n);
            continue;
        }
        let ident_start = |ch: char| ch.is_alphabetic() || ch == '_' || ch == '$';
        let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
        // `!contains`, `!in`, `!has`… are one word.
        let negated = c == '!' && chars.get(i + 1).is_some_and(|ch| ch.is_alphabetic());
        if ident_start(c) || negated {
            let mut j = i + 1;
            while j < chars.len() && ident_char(chars[j]) {
                j += 1;
            }
            let mut word: String = chars[i..j].iter().collect();
            let lower = word.to_ascii_lowercase();
            if HYPHEN_HEADS.contains(&lower.as_str())
                && chars.get(j) == Some(&'-')
                && chars.get(j + 1).is_some_and(|ch| ch.is_alphabetic())
            {
                j += 1;
                while j < chars.len() && (ident_char(chars[j]) || chars[j] == '-') {
                    j += 1;
                }
                word = chars[i..j].iter().collect();
            }
            // `in~` and `!in~`: case-insensitive membership.
            if (lower == "in" || lower == "!in") && chars.get(j) == Some(&'~') {
                j += 1;
                word = chars[i..j].iter().collect();
            }
            out.push(Token { tok: Tok::Ident(word), pos });
            let n = j - i;
            advance(&mut i, &mut line, &mut col, n);
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            Some(sym) => {
                out.push(Token { tok: Tok::Sym(sym), pos });
                advance(&mut i, &mut line, &mut col, sym.chars().count());
            }
            None => {
                return Err(QueryError::new(
                    ErrorKind::Parse,
                    pos,
                    &c.to_string(),
                    format!("unexpected character '{c}'"),
                ))
            }
        }
    }
    out.push(Token { tok: Tok::Eof, pos: Pos { line, column: col } });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The table, lower-cased (table names are case-insensitive).
    pub table: String,
    pub table_pos: Pos,
    pub ops: Vec<Operator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    InnerUnique,
    LeftOuter,
}

/// A column produced by `project`, `extend`, `summarize … by`: its name when the query gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: Option<String>,
    pub expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    /// `nulls first` / `nulls last`; `None`: KQL's default for the direction.
    pub nulls_first: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    CountIf,
    Sum,
    Avg,
    Min,
    Max,
    DCount,
    MakeList,
    MakeSet,
    TakeAny,
}

impl AggFunc {
    fn parse(name: &str) -> Option<AggFunc> {
        Some(match name {
            "count" => AggFunc::Count,
            "countif" => AggFunc::CountIf,
            "sum" => AggFunc::Sum,
            "avg" => AggFunc::Avg,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "dcount" => AggFunc::DCount,
            "make_list" => AggFunc::MakeList,
            "make_set" => AggFunc::MakeSet,
            "take_any" | "any" => AggFunc::TakeAny,
            _ => return None,
        })
    }

    /// (fewest, most) arguments.
    fn arity(self) -> (usize, usize) {
        match self {
            AggFunc::Count => (0, 0),
            // A size limit is accepted for `make_list`/`make_set` and `dcount`'s accuracy.
            AggFunc::MakeList | AggFunc::MakeSet | AggFunc::DCount => (1, 2),
            _ => (1, 1),
        }
    }

    /// The prefix of the column KQL names after the aggregate (`count_`, `sum_x`).
    pub fn column_prefix(self) -> &'static str {
        match self {
            AggFunc::Count => "count_",
            AggFunc::CountIf => "countif_",
            AggFunc::Sum => "sum_",
            AggFunc::Avg => "avg_",
            AggFunc::Min => "min_",
            AggFunc::Max => "max_",
            AggFunc::DCount => "dcount_",
            AggFunc::MakeList => "list_",
            AggFunc::MakeSet => "set_",
            AggFunc::TakeAny => "any_",
        }
    }
}

/// One output column of `summarize`: an expression over aggregates (`count()`,
/// `round(sum(x), 2)`, `sum(a) / count()`).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub name: Option<String>,
    pub expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Where(Expr),
    Extend(Vec<Named>),
    Project(Vec<Named>),
    ProjectAway(Vec<(String, Pos)>),
    ProjectRename(Vec<(String, String, Pos)>),
    Summarize { aggregates: Vec<Aggregate>, by: Vec<Named> },
    Sort(Vec<SortKey>),
    Top { n: i64, key: SortKey },
    Take(i64),
    Count,
    Distinct(Vec<Named>),
    MvExpand { name: Option<String>, expr: Expr },
    Join { kind: JoinKind, right: Box<Query>, on: Vec<(Expr, Expr)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    EqCi,
    NeCi,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// String operators: `negated`, `cs` (case-sensitive).
    Contains {
        negated: bool,
        cs: bool,
    },
    Has {
        negated: bool,
        cs: bool,
    },
    StartsWith {
        negated: bool,
        cs: bool,
    },
    EndsWith {
        negated: bool,
        cs: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    ToString,
    ToDouble,
    ToLong,
    ToBool,
    ToLower,
    ToUpper,
    ToDynamic,
    Iff,
    Case,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    StrCat,
    Round,
    Not,
    Strlen,
    ArrayLength,
    Coalesce,
    Now,
    Ago,
    ToDateTime,
    ToTimespan,
}

impl Func {
    fn parse(name: &str) -> Option<Func> {
        Some(match name {
            "tostring" => Func::ToString,
            "todouble" | "toreal" => Func::ToDouble,
            "toint" | "tolong" => Func::ToLong,
            "tobool" | "toboolean" => Func::ToBool,
            "tolower" => Func::ToLower,
            "toupper" => Func::ToUpper,
            "todynamic" | "parse_json" => Func::ToDynamic,
            "iff" | "iif" => Func::Iff,
            "case" => Func::Case,
            "isempty" => Func::IsEmpty,
            "isnotempty" => Func::IsNotEmpty,
            "isnull" => Func::IsNull,
            "isnotnull" => Func::IsNotNull,
            "strcat" => Func::StrCat,
            "round" => Func::Round,
            "not" => Func::Not,
            "strlen" => Func::Strlen,
            "array_length" => Func::ArrayLength,
            "coalesce" => Func::Coalesce,
            "now" => Func::Now,
            "ago" => Func::Ago,
            "todatetime" => Func::ToDateTime,
            "totimespan" => Func::ToTimespan,
            _ => return None,
        })
    }

    fn arity(self) -> (usize, usize) {
        match self {
            Func::Iff => (3, 3),
            Func::Case => (3, usize::MAX),
            Func::StrCat => (1, 64),
            Func::Coalesce => (2, 64),
            Func::Round => (1, 2),
            Func::Now => (0, 0),
            _ => (1, 1),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Column(String, Pos),
    /// `e.name` or `e['name']`.
    Member(Box<Expr>, String),
    /// `e[i]` with a computed index.
    Index(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        ci: bool,
    },
    Call(Func, Vec<Expr>),
    /// An aggregate function (only inside `summarize`).
    Agg(AggFunc, Vec<Expr>),
}

impl Expr {
    /// The column name KQL gives an unnamed expression: a column keeps its name, a dynamic path
    /// joins its parts with `_` (`properties.score.current` → `properties_score_current`), a
    /// function of one such argument takes the argument's name.
    pub fn default_name(&self) -> Option<String> {
        match self {
            Expr::Column(name, _) => Some(name.clone()),
            Expr::Member(base, key) => Some(format!("{}_{key}", base.default_name()?)),
            Expr::Index(base, index) => match index.as_ref() {
                Expr::Lit(Value::Number(n)) => Some(format!("{}_{n}", base.default_name()?)),
                _ => None,
            },
            Expr::Call(_, args) => args.first()?.default_name(),
            Expr::Agg(func @ (AggFunc::Count | AggFunc::CountIf), _) => {
                Some(func.column_prefix().to_string())
            }
            Expr::Agg(func, args) => Some(format!(
                "{}{}",
                func.column_prefix(),
                args.first().and_then(Expr::default_name).unwrap_or_default()
            )),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// Tabular operators of KQL this server does not evaluate: named in their own error.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "union",
    "parse",
    "make-series",
    "mv-apply",
    "render",
    "lookup",
    "search",
    "find",
    "evaluate",
    "invoke",
    "as",
    "sample",
    "sample-distinct",
    "serialize",
    "getschema",
    "project-keep",
    "project-reorder",
    "reduce",
    "fork",
    "facet",
    "partition",
    "scan",
    "range",
    "print",
    "datatable",
];

/// Scalar operators of KQL outside the subset.
const UNSUPPORTED_SCALAR_OPERATORS: &[&str] = &[
    "has_any",
    "has_all",
    "matches",
    "between",
    "!between",
    "hasprefix",
    "!hasprefix",
    "hassuffix",
    "!hassuffix",
    "has_any_cs",
    "like",
];

/// Parse a whole query.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0, depth: 0, aggregates: false };
    let query = p.query()?;
    // A trailing `;` is harmless.
    p.eat_sym(";");
    match &p.peek().tok {
        Tok::Eof => Ok(query),
        _ => Err(p.unexpected("the end of the query")),
    }
}

/// Parse a scalar expression alone (a facet's expression or filter).
pub fn parse_expression(text: &str) -> Result<Expr, QueryError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0, depth: 0, aggregates: false };
    let e = p.expr()?;
    match &p.peek().tok {
        Tok::Eof => Ok(e),
        _ => Err(p.unexpected("the end of the expression")),
    }
}

/// Nesting limit: a query of many parentheses must not exhaust the stack.
const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    /// Inside a `summarize` item, outside any aggregate's arguments: aggregates are allowed.
    aggregates: bool,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `tokenize` always ends with Eof and the parser never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.at + n).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if !matches!(t.tok, Tok::Eof) {
            self.at += 1;
        }
        t
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(&self.peek().tok, Tok::Sym(s) if *s == sym)
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let yes = self.is_sym(sym);
        if yes {
            self.next();
        }
        yes
    }

    /// Is the next token the keyword `word` (keywords match case-sensitively, as in KQL)?
    fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let yes = self.is_word(word);
        if yes {
            self.next();
        }
        yes
    }

    fn unexpected(&self, wanted: &str) -> QueryError {
        let t = self.peek();
        let text = t.text();
        QueryError::new(
            ErrorKind::Parse,
            t.pos,
            &text,
            format!("expected {wanted}, found '{text}'"),
        )
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), QueryError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{sym}'")))
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), QueryError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{word}'")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), QueryError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Ident(s) if !s.starts_with('!') => {
                self.next();
                Ok((s, t.pos))
            }
            // `['name with spaces']`
            Tok::Sym("[") => {
                if let Tok::Str(s) = &self.peek_at(1).tok {
                    let s = s.clone();
                    self.next();
                    self.next();
                    self.expect_sym("]")?;
                    return Ok((s, t.pos));
                }
                Err(self.unexpected(what))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn int(&mut self, what: &str) -> Result<i64, QueryError> {
        match self.peek().tok {
            Tok::Int(n) if n >= 0 => {
                self.next();
                Ok(n)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.peek();
            return Err(QueryError::new(
                ErrorKind::Parse,
                t.pos,
                &t.text(),
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        self.enter()?;
        let t = self.peek().clone();
        let (table, table_pos) = match &t.tok {
            Tok::Ident(s) if s == "let" => {
                return Err(QueryError::new(
                    ErrorKind::Unsupported,
                    t.pos,
                    s,
                    "'let' statements are not supported",
                ))
            }
            // ARG runs a query that starts with an operator over `Resources`.
            Tok::Ident(s) if is_operator_word(s) => ("resources".to_string(), t.pos),
            Tok::Ident(_) => {
                let (name, pos) = self.ident("a table name")?;
                if self.is_sym("(") {
                    return Err(QueryError::new(
                        ErrorKind::Unsupported,
                        pos,
                        &name,
                        format!("'{name}(…)' as a source is not supported: start with a table"),
                    ));
                }
                (name.to_ascii_lowercase(), pos)
            }
            _ => return Err(self.unexpected("a table name")),
        };
        let implicit = matches!(&t.tok, Tok::Ident(s) if is_operator_word(s));
        let mut ops = Vec::new();
        let mut first = implicit;
        loop {
            if !first && !self.eat_sym("|") {
                break;
            }
            first = false;
            ops.push(self.operator()?);
        }
        self.depth -= 1;
        Ok(Query { table, table_pos, ops })
    }

    fn operator(&mut self) -> Result<Operator, QueryError> {
        let t = self.peek().clone();
        let Tok::Ident(word) = &t.tok else { return Err(self.unexpected("a tabular operator")) };
        let word = word.clone();
        self.next();
        match word.as_str() {
            "where" | "filter" => Ok(Operator::Where(self.expr()?)),
            "extend" => Ok(Operator::Extend(self.named_list()?)),
            "project" => Ok(Operator::Project(self.named_list()?)),
            "project-away" => {
                let mut cols = vec![self.ident("a column name")?];
                while self.eat_sym(",") {
                    cols.push(self.ident("a column name")?);
                }
                Ok(Operator::ProjectAway(cols))
            }
            "project-rename" => {
                let mut pairs = Vec::new();
                loop {
                    let (new, pos) = self.ident("a new column name")?;
                    self.expect_sym("=")?;
                    let (old, _) = self.ident("a column name")?;
                    pairs.push((new, old, pos));
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                Ok(Operator::ProjectRename(pairs))
            }
            "summarize" => self.summarize(),
            "order" | "sort" => {
                self.expect_word("by")?;
                let mut keys = vec![self.sort_key()?];
                while self.eat_sym(",") {
                    keys.push(self.sort_key()?);
                }
                Ok(Operator::Sort(keys))
            }
            "top" => {
                let n = self.int("a row count")?;
                self.expect_word("by")?;
                Ok(Operator::Top { n, key: self.sort_key()? })
            }
            "take" | "limit" => Ok(Operator::Take(self.int("a row count")?)),
            "count" => Ok(Operator::Count),
            "distinct" => Ok(Operator::Distinct(self.named_list()?)),
            "mv-expand" => {
                if self.is_word("kind") || self.is_word("bagexpansion") {
                    let t = self.peek().clone();
                    return Err(QueryError::new(
                        ErrorKind::Unsupported,
                        t.pos,
                        &t.text(),
                        "mv-expand parameters are not supported",
                    ));
                }
                let named = self.named()?;
                if self.eat_word("to") {
                    // `to typeof(T)`: the elements keep their JSON type here.
                    self.expect_word("typeof")?;
                    self.expect_sym("(")?;
                    self.ident("a type name")?;
                    self.expect_sym(")")?;
                }
                if self.is_sym(",") || self.is_word("limit") || self.is_word("with_itemindex") {
                    let t = self.peek().clone();
                    return Err(QueryError::new(
                        ErrorKind::Unsupported,
                        t.pos,
                        &t.text(),
                        "mv-expand of more than one column, 'limit' and 'with_itemindex' are not supported",
                    ));
                }
                Ok(Operator::MvExpand { name: named.name, expr: named.expr })
            }
            "join" => self.join(),
            w if UNSUPPORTED_OPERATORS.contains(&w) => Err(QueryError::new(
                ErrorKind::Unsupported,
                t.pos,
                w,
                format!("the operator '{w}' is not supported"),
            )),
            w => Err(QueryError::new(
                ErrorKind::Parse,
                t.pos,
                w,
                format!("'{w}' is not a tabular operator"),
            )),
        }
    }

    fn summarize(&mut self) -> Result<Operator, QueryError> {
        let mut aggregates = Vec::new();
        if !self.is_word("by") {
            loop {
                aggregates.push(self.aggregate()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        let by = if self.eat_word("by") { self.named_list()? } else { Vec::new() };
        if aggregates.is_empty() && by.is_empty() {
            return Err(self.unexpected("an aggregate or 'by'"));
        }
        Ok(Operator::Summarize { aggregates, by })
    }

    fn aggregate(&mut self) -> Result<Aggregate, QueryError> {
        let name = self.optional_name();
        let start = self.peek().clone();
        self.aggregates = true;
        let expr = self.expr();
        self.aggregates = false;
        let expr = expr?;
        if !has_aggregate(&expr) {
            return Err(QueryError::new(
                ErrorKind::Semantic,
                start.pos,
                &start.text(),
                "a summarize column needs an aggregate function such as count()",
            ));
        }
        Ok(Aggregate { name, expr })
    }

    fn join(&mut self) -> Result<Operator, QueryError> {
        let mut kind = JoinKind::InnerUnique;
        if self.eat_word("kind") {
            self.expect_sym("=")?;
            let (k, pos) = self.ident("a join kind")?;
            kind = match k.as_str() {
                "inner" => JoinKind::Inner,
                "innerunique" => JoinKind::InnerUnique,
                "leftouter" => JoinKind::LeftOuter,
                other => {
                    return Err(QueryError::new(
                        ErrorKind::Unsupported,
                        pos,
                        other,
                        format!(
                        "join kind '{other}' is not supported (inner, innerunique, leftouter are)"
                    ),
                    ))
                }
            };
        }
        self.expect_sym("(")?;
        let right = self.query()?;
        self.expect_sym(")")?;
        self.expect_word("on")?;
        let mut on = Vec::new();
        loop {
            let left = self.expr()?;
            match left {
                Expr::Binary(BinOp::Eq, l, r) => on.push((*l, *r)),
                Expr::Column(..) => on.push((left.clone(), left)),
                _ => {
                    let t = self.peek();
                    return Err(QueryError::new(
                        ErrorKind::Parse,
                        t.pos,
                        &t.text(),
                        "a join condition is a column or '$left.a == $right.b'",
                    ));
                }
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(Operator::Join { kind, right: Box::new(right), on })
    }

    fn sort_key(&mut self) -> Result<SortKey, QueryError> {
        let expr = self.expr()?;
        // KQL sorts descending unless told otherwise.
        let desc = if self.eat_word("asc") {
            false
        } else {
            self.eat_word("desc");
            true
        };
        let nulls_first = if self.eat_word("nulls") {
            if self.eat_word("first") {
                Some(true)
            } else {
                self.expect_word("last")?;
                Some(false)
            }
        } else {
            None
        };
        Ok(SortKey { expr, desc, nulls_first })
    }

    /// `name =` before an expression, when it is there.
    fn optional_name(&mut self) -> Option<String> {
        let named = matches!(&self.peek().tok, Tok::Ident(s) if !s.starts_with('!'))
            && matches!(self.peek_at(1).tok, Tok::Sym("="));
        if named {
            if let Tok::Ident(s) = self.next().tok {
                self.next();
                return Some(s);
            }
        }
        None
    }

    fn named(&mut self) -> Result<Named, QueryError> {
        let name = self.optional_name();
        Ok(Named { name, expr: self.expr()? })
    }

    fn named_list(&mut self) -> Result<Vec<Named>, QueryError> {
        let mut items = vec![self.named()?];
        while self.eat_sym(",") {
            items.push(self.named()?);
        }
        Ok(items)
    }

    // Expressions, lowest precedence first.

    fn expr(&mut self) -> Result<Expr, QueryError> {
        self.enter()?;
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        let mark = self.depth;
        while self.eat_word("or") {
            self.enter()?;
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(self.and()?));
        }
        self.depth = mark;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.comparison()?;
        let mark = self.depth;
        while self.eat_word("and") {
            self.enter()?;
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(self.comparison()?));
        }
        self.depth = mark;
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let left = self.additive()?;
        let t = self.peek().clone();
        let op = match &t.tok {
            Tok::Sym("==") => BinOp::Eq,
            Tok::Sym("!=") => BinOp::Ne,
            Tok::Sym("=~") => BinOp::EqCi,
            Tok::Sym("!~") => BinOp::NeCi,
            Tok::Sym("<") => BinOp::Lt,
            Tok::Sym("<=") => BinOp::Le,
            Tok::Sym(">") => BinOp::Gt,
            Tok::Sym(">=") => BinOp::Ge,
            Tok::Ident(w) => {
                let negated = w.starts_with('!');
                let base = w.trim_start_matches('!');
                let (base, cs) = match base.strip_suffix("_cs") {
                    Some(b) => (b, true),
                    None => (base, false),
                };
                match base {
                    "contains" => BinOp::Contains { negated, cs },
                    "has" => BinOp::Has { negated, cs },
                    "startswith" => BinOp::StartsWith { negated, cs },
                    "endswith" => BinOp::EndsWith { negated, cs },
                    "in" | "in~" if !cs => {
                        self.next();
                        let list = self.in_list()?;
                        return Ok(Expr::In {
                            expr: Box::new(left),
                            list,
                            negated,
                            ci: base == "in~",
                        });
                    }
                    _ if UNSUPPORTED_SCALAR_OPERATORS.contains(&w.as_str()) => {
                        return Err(QueryError::new(
                            ErrorKind::Unsupported,
                            t.pos,
                            w,
                            format!("the operator '{w}' is not supported"),
                        ))
                    }
                    _ => return Ok(left),
                }
            }
            _ => return Ok(left),
        };
        self.next();
        let right = self.additive()?;
        Ok(Expr::Binary(op, Box::new(left), Box::new(right)))
    }

    fn in_list(&mut self) -> Result<Vec<Expr>, QueryError> {
        self.expect_sym("(")?;
        let mut list = vec![self.expr()?];
        while self.eat_sym(",") {
            list.push(self.expr()?);
        }
        self.expect_sym(")")?;
        Ok(list)
    }

    fn additive(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.multiplicative()?;
        let mark = self.depth;
        loop {
            let op = if self.eat_sym("+") {
                BinOp::Add
            } else if self.eat_sym("-") {
                BinOp::Sub
            } else {
                self.depth = mark;
                return Ok(left);
            };
            self.enter()?;
            left = Expr::Binary(op, Box::new(left), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        let mark = self.depth;
        loop {
            let op = if self.eat_sym("*") {
                BinOp::Mul
            } else if self.eat_sym("/") {
                BinOp::Div
            } else if self.eat_sym("%") {
                BinOp::Mod
            } else {
                self.depth = mark;
                return Ok(left);
            };
            self.enter()?;
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.eat_sym("-") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(match inner {
                Expr::Lit(Value::Number(n)) if n.as_i64().and_then(i64::checked_neg).is_some() => {
                    Expr::Lit(Value::from(n.as_i64().and_then(i64::checked_neg).unwrap_or(0)))
                }
                other => Expr::Neg(Box::new(other)),
            });
        }
        if self.eat_sym("+") {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            return inner;
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.primary()?;
        let mark = self.depth;
        loop {
            // Every step nests the tree one level deeper: counted like parentheses.
            if self.is_sym(".") || self.is_sym("[") {
                self.enter()?;
            }
            if self.eat_sym(".") {
                let (name, _) = self.ident("a property name")?;
                e = Expr::Member(Box::new(e), name);
            } else if self.eat_sym("[") {
                let index = self.expr()?;
                self.expect_sym("]")?;
                e = match index {
                    Expr::Lit(Value::String(s)) => Expr::Member(Box::new(e), s),
                    other => Expr::Index(Box::new(e), Box::new(other)),
                };
            } else {
                self.depth = mark;
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Str(s) => {
                self.next();
                Ok(Expr::Lit(Value::String(s)))
            }
            Tok::Int(n) => {
                self.next();
                Ok(Expr::Lit(Value::from(n)))
            }
            Tok::Real(r) => {
                self.next();
                Ok(Expr::Lit(serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)))
            }
            Tok::Timespan(seconds) => {
                self.next();
                Ok(Expr::Lit(Value::String(format_timespan(seconds))))
            }
            Tok::Sym("(") => {
                self.next();
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("[") => {
                let (name, pos) = self.ident("a column name")?;
                Ok(Expr::Column(name, pos))
            }
            Tok::Ident(ref w) if w == "true" || w == "false" => {
                self.next();
                Ok(Expr::Lit(Value::Bool(w == "true")))
            }
            Tok::Ident(ref w) if w == "dynamic" && matches!(self.peek_at(1).tok, Tok::Sym("(")) => {
                Err(QueryError::new(
                    ErrorKind::Unsupported,
                    t.pos,
                    w,
                    "dynamic(…) literals are not supported",
                ))
            }
            Tok::Ident(ref w) if !w.starts_with('!') => {
                let w = w.clone();
                self.next();
                if !self.is_sym("(") {
                    return Ok(Expr::Column(w, t.pos));
                }
                if let Some(func) = Func::parse(&w) {
                    let args = self.call_args(&w, t.pos, func.arity())?;
                    return Ok(Expr::Call(func, args));
                }
                if let Some(func) = AggFunc::parse(&w).filter(|_| self.aggregates) {
                    // No aggregate inside another's arguments.
                    self.aggregates = false;
                    let args = self.call_args(&w, t.pos, func.arity());
                    self.aggregates = true;
                    return Ok(Expr::Agg(func, args?));
                }
                let why = if AggFunc::parse(&w).is_some() {
                    format!("the aggregate function '{w}' is only allowed in summarize")
                } else {
                    format!("the function '{w}' is not supported")
                };
                Err(QueryError::new(ErrorKind::Unsupported, t.pos, &w, why))
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn call_args(
        &mut self,
        name: &str,
        pos: Pos,
        (min, max): (usize, usize),
    ) -> Result<Vec<Expr>, QueryError> {
        self.expect_sym("(")?;
        let mut args = Vec::new();
        if !self.eat_sym(")") {
            args.push(self.expr()?);
            while self.eat_sym(",") {
                args.push(self.expr()?);
            }
            self.expect_sym(")")?;
        }
        if args.len() < min || args.len() > max {
            let wanted = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(QueryError::new(
                ErrorKind::Semantic,
                pos,
                name,
                format!("'{name}' takes {wanted} argument(s), not {}", args.len()),
            ));
        }
        Ok(args)
    }
}

/// Does the expression hold an aggregate function?
fn has_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Agg(..) => true,
        Expr::Lit(_) | Expr::Column(..) => false,
        Expr::Member(b, _) | Expr::Neg(b) => has_aggregate(b),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => has_aggregate(a) || has_aggregate(b),
        Expr::In { expr, list, .. } => has_aggregate(expr) || list.iter().any(has_aggregate),
        Expr::Call(_, args) => args.iter().any(has_aggregate),
    }
}

/// Words that start a tabular operator (a query may start with one: ARG reads `Resources` then).
fn is_operator_word(w: &str) -> bool {
    matches!(
        w,
        "where"
            | "filter"
            | "extend"
            | "project"
            | "project-away"
            | "project-rename"
            | "summarize"
            | "order"
            | "sort"
            | "top"
            | "take"
            | "limit"
            | "count"
            | "distinct"
            | "mv-expand"
            | "join"
    )
}

impl Query {
    /// The resource types the query's first `where` keeps, when it says so plainly (`type ==
    /// 'x'`, `type =~ 'x'`, `type in (…)`, possibly `and`-ed with other conditions): lower-cased.
    /// `None`: any type may pass. Lets the table skip rendering rows no one will see.
    pub fn type_filter(&self) -> Option<Vec<String>> {
        let Some(Operator::Where(e)) = self.ops.first() else { return None };
        type_filter(e)
    }
}

impl Query {
    /// The most rows of the table the query can use, when it starts by taking a few (`take N`,
    /// possibly after a `where` that only tests `type`, which [`Query::type_filter`] already
    /// applies while the table is built). `None`: every row may matter.
    pub fn row_limit(&self) -> Option<usize> {
        let mut ops = self.ops.iter();
        let first = match ops.next()? {
            Operator::Where(e) if only_type(e) => ops.next()?,
            other => other,
        };
        match first {
            Operator::Take(n) => usize::try_from(*n).ok(),
            _ => None,
        }
    }
}

/// Does a condition test nothing but `type` (so that the type filter is all of it)?
fn only_type(e: &Expr) -> bool {
    let is_type = |e: &Expr| matches!(e, Expr::Column(c, _) if c == "type");
    // Rows carry lower-case types: `==` with a lower-case literal is as exact as `=~`.
    let lit = |e: &Expr, ci: bool| match e {
        Expr::Lit(Value::String(t)) => ci || *t == t.to_ascii_lowercase(),
        _ => false,
    };
    match e {
        Expr::Binary(op @ (BinOp::EqCi | BinOp::Eq), l, r) => {
            let ci = *op == BinOp::EqCi;
            (is_type(l) && lit(r, ci)) || (is_type(r) && lit(l, ci))
        }
        Expr::In { expr, list, negated: false, ci } => {
            is_type(expr) && list.iter().all(|e| lit(e, *ci))
        }
        Expr::Binary(BinOp::Or, l, r) => only_type(l) && only_type(r),
        _ => false,
    }
}

fn type_filter(e: &Expr) -> Option<Vec<String>> {
    let is_type = |e: &Expr| matches!(e, Expr::Column(c, _) if c == "type");
    let lit = |e: &Expr| match e {
        Expr::Lit(Value::String(s)) => Some(s.to_ascii_lowercase()),
        _ => None,
    };
    match e {
        Expr::Binary(BinOp::Eq | BinOp::EqCi, l, r) if is_type(l) => Some(vec![lit(r)?]),
        Expr::Binary(BinOp::Eq | BinOp::EqCi, l, r) if is_type(r) => Some(vec![lit(l)?]),
        Expr::In { expr, list, negated: false, .. } if is_type(expr) => {
            list.iter().map(lit).collect()
        }
        Expr::Binary(BinOp::And, l, r) => match (type_filter(l), type_filter(r)) {
            (Some(a), Some(b)) => Some(a.into_iter().filter(|t| b.contains(t)).collect()),
            (a, b) => a.or(b),
        },
        Expr::Binary(BinOp::Or, l, r) => {
            let (mut a, b) = (type_filter(l)?, type_filter(r)?);
            a.extend(b);
            Some(a)
        }
        _ => None,
    }
}

/// A timespan of `seconds` as KQL prints it.
pub fn format_timespan(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "-" } else { "" };
    let ticks = (seconds.abs() * 1e7).round() as u128;
    let (whole, fraction) = (ticks / 10_000_000, ticks % 10_000_000);
    let (days, rest) = (whole / 86_400, whole % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let day = if days > 0 { format!("{days}.") } else { String::new() };
    let frac = if fraction > 0 { format!(".{fraction:07}") } else { String::new() };
    format!("{sign}{day}{h:02}:{m:02}:{s:02}{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ops(q: &str) -> Vec<Operator> {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).ops
    }

    fn err(q: &str) -> QueryError {
        parse(q).expect_err(q)
    }

    fn col(name: &str) -> Expr {
        Expr::Column(name.into(), Pos::default())
    }

    /// Positions aside, for comparing trees.
    fn strip(e: Expr) -> Expr {
        let b = |e: Box<Expr>| Box::new(strip(*e));
        match e {
            Expr::Column(n, _) => Expr::Column(n, Pos::default()),
            Expr::Member(x, k) => Expr::Member(b(x), k),
            Expr::Index(x, i) => Expr::Index(b(x), b(i)),
            Expr::Neg(x) => Expr::Neg(b(x)),
            Expr::Binary(op, x, y) => Expr::Binary(op, b(x), b(y)),
            Expr::In { expr, list, negated, ci } => {
                Expr::In { expr: b(expr), list: list.into_iter().map(strip).collect(), negated, ci }
            }
            Expr::Call(f, args) => Expr::Call(f, args.into_iter().map(strip).collect()),
            Expr::Agg(f, args) => Expr::Agg(f, args.into_iter().map(strip).collect()),
            lit => lit,
        }
    }

    fn where_of(q: &str) -> Expr {
        match ops(q).remove(0) {
            Operator::Where(e) => strip(e),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_carry_lines_and_columns_through_comments_and_crlf() {
        let t = tokenize("a // note\r\n| where  x =~ 'y'\n  and z !contains \"w\"").unwrap();
        let at = |i: usize| (t[i].pos.line, t[i].pos.column);
        assert_eq!(t[0].tok, Tok::Ident("a".into()));
        assert_eq!((t[1].tok.clone(), at(1)), (Tok::Sym("|"), (2, 1)));
        assert_eq!(at(2), (2, 3));
        assert_eq!((t[4].tok.clone(), at(4)), (Tok::Sym("=~"), (2, 12)));
        assert_eq!(t[5].tok, Tok::Str("y".into()));
        assert_eq!((t[6].tok.clone(), at(6)), (Tok::Ident("and".into()), (3, 3)));
        assert_eq!(t[8].tok, Tok::Ident("!contains".into()));
        assert_eq!(t[9].tok, Tok::Str("w".into()));
        assert_eq!(t.last().map(|t| t.tok.clone()), Some(Tok::Eof));
        let t = tokenize(r#"project-away mv-expand x in~ !in~ 'a\'b' @'c:\d' 1.5e2 42"#).unwrap();
        let toks: Vec<Tok> = t.into_iter().map(|t| t.tok).collect();
        assert_eq!(
            toks,
            [
                Tok::Ident("project-away".into()),
                Tok::Ident("mv-expand".into()),
                Tok::Ident("x".into()),
                Tok::Ident("in~".into()),
                Tok::Ident("!in~".into()),
                Tok::Str("a'b".into()),
                Tok::Str("c:\\d".into()),
                Tok::Real(150.0),
                Tok::Int(42),
                Tok::Eof,
            ]
        );
        // `a-b` is arithmetic, not a hyphenated keyword.
        let t = tokenize("a-b").unwrap();
        assert_eq!(t[1].tok, Tok::Sym("-"));
    }

    #[test]
    fn table_names_are_case_insensitive_and_operators_parse() {
        let q = parse("SecurityResources | take 3").unwrap();
        assert_eq!(q.table, "securityresources");
        assert_eq!(q.ops, [Operator::Take(3)]);
        assert_eq!(ops("t | limit 5"), [Operator::Take(5)]);
        assert_eq!(ops("t | count"), [Operator::Count]);
        // A query that starts with an operator reads `resources`.
        let q = parse("where name == 'x'").unwrap();
        assert_eq!((q.table.as_str(), q.ops.len()), ("resources", 1));

        match &ops("t | extend a = 1, tostring(properties.x)")[0] {
            Operator::Extend(items) => {
                assert_eq!(items[0].name.as_deref(), Some("a"));
                assert_eq!(items[1].name, None);
                assert_eq!(items[1].expr.default_name().as_deref(), Some("properties_x"));
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | project id, n = name, properties.score['current']")[0] {
            Operator::Project(items) => {
                let names: Vec<Option<String>> =
                    items.iter().map(|i| i.name.clone().or(i.expr.default_name())).collect();
                assert_eq!(
                    names,
                    [Some("id".into()), Some("n".into()), Some("properties_score_current".into())]
                );
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | project-away a, b | project-rename c = d")[..] {
            [Operator::ProjectAway(a), Operator::ProjectRename(r)] => {
                assert_eq!(a.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["a", "b"]);
                assert_eq!((r[0].0.as_str(), r[0].1.as_str()), ("c", "d"));
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | summarize n = count(), sum(w), avg(x) by location, k = tolower(type)")[0] {
            Operator::Summarize { aggregates, by } => {
                assert_eq!(aggregates.len(), 3);
                assert_eq!(aggregates[0].name.as_deref(), Some("n"));
                assert_eq!(aggregates[1].expr.default_name().as_deref(), Some("sum_w"));
                assert_eq!(aggregates[2].expr.default_name().as_deref(), Some("avg_x"));
                assert_eq!(by[1].name.as_deref(), Some("k"));
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | summarize by location")[0] {
            Operator::Summarize { aggregates, by } => {
                assert!(aggregates.is_empty());
                assert_eq!(by.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | order by a asc, b desc nulls first | sort by c")[..] {
            [Operator::Sort(k1), Operator::Sort(k2)] => {
                assert_eq!((k1[0].desc, k1[1].desc, k1[1].nulls_first), (false, true, Some(true)));
                assert!(k2[0].desc, "descending unless told");
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | top 3 by count_ asc")[0] {
            Operator::Top { n, key } => assert_eq!((*n, key.desc), (3, false)),
            other => panic!("{other:?}"),
        }
        match &ops("t | mv-expand mg = chain to typeof(string)")[0] {
            Operator::MvExpand { name, .. } => assert_eq!(name.as_deref(), Some("mg")),
            other => panic!("{other:?}"),
        }
        match &ops("t | join kind=leftouter (u | project s) on s")[0] {
            Operator::Join { kind, right, on } => {
                assert_eq!(*kind, JoinKind::LeftOuter);
                assert_eq!(right.table, "u");
                assert_eq!(on.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | join (u) on $left.a == $right.b")[0] {
            Operator::Join { kind, on, .. } => {
                assert_eq!(*kind, JoinKind::InnerUnique, "KQL's default kind");
                assert!(matches!(on[0].0, Expr::Member(..)));
            }
            other => panic!("{other:?}"),
        }
        match &ops("t | distinct a, b")[0] {
            Operator::Distinct(items) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expressions_bind_as_kql_says() {
        use BinOp::*;
        let lit = |v: Value| Expr::Lit(v);
        // and binds tighter than or; comparison tighter than and; * tighter than +.
        assert_eq!(
            where_of("t | where a == 1 or b == 2 and c == 3"),
            Expr::Binary(
                Or,
                Box::new(Expr::Binary(Eq, Box::new(col("a")), Box::new(lit(1.into())))),
                Box::new(Expr::Binary(
                    And,
                    Box::new(Expr::Binary(Eq, Box::new(col("b")), Box::new(lit(2.into())))),
                    Box::new(Expr::Binary(Eq, Box::new(col("c")), Box::new(lit(3.into())))),
                )),
            )
        );
        assert_eq!(
            where_of("t | where a + b * 2 > -1"),
            Expr::Binary(
                Gt,
                Box::new(Expr::Binary(
                    Add,
                    Box::new(col("a")),
                    Box::new(Expr::Binary(Mul, Box::new(col("b")), Box::new(lit(2.into())))),
                )),
                Box::new(lit((-1).into())),
            )
        );
        let ops_of = |q: &str| match where_of(q) {
            Expr::Binary(op, ..) => op,
            other => panic!("{other:?}"),
        };
        assert_eq!(ops_of("t | where a != 'x'"), Ne);
        assert_eq!(ops_of("t | where a !~ 'x'"), NeCi);
        assert_eq!(ops_of("t | where a <= 1"), Le);
        assert_eq!(ops_of("t | where a >= 1"), Ge);
        assert_eq!(ops_of("t | where a < 1"), Lt);
        assert_eq!(ops_of("t | where a % 2 == 1"), Eq);
        assert_eq!(ops_of("t | where a contains 'x'"), Contains { negated: false, cs: false });
        assert_eq!(ops_of("t | where a !contains 'x'"), Contains { negated: true, cs: false });
        assert_eq!(ops_of("t | where a contains_cs 'x'"), Contains { negated: false, cs: true });
        assert_eq!(ops_of("t | where a has 'x'"), Has { negated: false, cs: false });
        assert_eq!(ops_of("t | where a !has 'x'"), Has { negated: true, cs: false });
        assert_eq!(ops_of("t | where a startswith 'x'"), StartsWith { negated: false, cs: false });
        assert_eq!(ops_of("t | where a !endswith 'x'"), EndsWith { negated: true, cs: false });
        match where_of("t | where type !in~ ('a', 'b')") {
            Expr::In { list, negated, ci, .. } => {
                assert_eq!((list.len(), negated, ci), (2, true, true))
            }
            other => panic!("{other:?}"),
        }
        match where_of(
            "t | where not(isempty(a)) and iff(b, true, false) and case(c, 1, d, 2, 3) > 0",
        ) {
            Expr::Binary(And, ..) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            where_of("t | where properties.a[0]['b'] == 1"),
            Expr::Binary(
                Eq,
                Box::new(Expr::Member(
                    Box::new(Expr::Index(
                        Box::new(Expr::Member(Box::new(col("properties")), "a".into())),
                        Box::new(lit(0.into())),
                    )),
                    "b".into(),
                )),
                Box::new(lit(1.into())),
            )
        );
        for f in [
            "tostring(a)",
            "todouble(a)",
            "toreal(a)",
            "toint(a)",
            "tolong(a)",
            "tolower(a)",
            "toupper(a)",
            "isnotempty(a)",
            "isnull(a)",
            "isnotnull(a)",
            "strcat(a, 'b', 1)",
            "round(a, 2)",
            "iif(a, 1, 2)",
            "coalesce(a, b)",
        ] {
            parse(&format!("t | extend x = {f}")).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_construct_and_its_line_and_column() {
        let e = err("securityresources\n| union x");
        assert_eq!(
            (e.kind, e.pos, e.token.as_str()),
            (ErrorKind::Unsupported, Pos { line: 2, column: 3 }, "union")
        );
        let e = err("t | where a has_any ('x')");
        assert_eq!(
            (e.kind, e.pos.column, e.token.as_str()),
            (ErrorKind::Unsupported, 13, "has_any")
        );
        let e = err("t | wher a == 1");
        assert_eq!((e.kind, e.pos.column), (ErrorKind::Parse, 5));
        assert!(e.message.contains("wher"), "{}", e.message);
        let e = err("t | extend a = foo(1)");
        assert_eq!((e.kind, e.token.as_str(), e.pos.column), (ErrorKind::Unsupported, "foo", 16));
        let e = err("t | extend a = count()");
        assert!(e.message.contains("only allowed in summarize"), "{}", e.message);
        let e = err("t | summarize name");
        assert_eq!(e.kind, ErrorKind::Semantic);
        let e = err("t | summarize percentile(a, 5)");
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Unsupported, "percentile"));
        let e = err("t | extend a = iff(1, 2)");
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Semantic, "iff"));
        let e = err("t | join kind=fullouter (u) on a");
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Unsupported, "fullouter"));
        let e = err("t | where a == 'x");
        assert_eq!((e.kind, e.pos.column), (ErrorKind::Parse, 16));
        let e = err("t | take 1y");
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Unsupported, "1y"));
        let e = err("t | take 1d");
        assert_eq!((e.kind, e.pos.column), (ErrorKind::Parse, 10));
        let e = err("t | take 1 2");
        assert_eq!((e.kind, e.pos.column), (ErrorKind::Parse, 12));
        let e = err("t | where a == #");
        assert_eq!((e.kind, e.pos.column), (ErrorKind::Parse, 16));
        let e = err(&format!("t | where {}1{}", "(".repeat(200), ")".repeat(200)));
        assert!(e.message.contains("nests deeper"), "{}", e.message);
        assert_eq!(parse_expression("a ==").unwrap_err().kind, ErrorKind::Parse);
        // Long chains nest the tree as deeply as parentheses do: refused, not a stack overflow.
        for long in [
            format!("t | where {}", vec!["1"; 5000].join(" + ")),
            format!("t | where {}", vec!["a == 1"; 5000].join(" or ")),
            format!("t | where {}", vec!["a"; 5000].join(" * ")),
            format!("t | extend x = p{}", ".a".repeat(5000)),
            format!("t | extend x = {}1", "-".repeat(5000)),
            format!("t | extend x = {}1", "+".repeat(5000)),
        ] {
            let e = err(&long);
            assert!(e.message.contains("nests deeper"), "{}", e.message);
        }
        // Within the limit, chains parse.
        parse(&format!("t | where {}", vec!["1"; 40].join(" + "))).unwrap();
    }

    #[test]
    fn type_filters_come_from_the_first_where_only() {
        let f = |q: &str| parse(q).unwrap().type_filter();
        assert_eq!(f("t | where type == 'A/B'"), Some(vec!["a/b".to_string()]));
        assert_eq!(f("t | where type =~ 'a' and name == 'x'"), Some(vec!["a".to_string()]));
        assert_eq!(f("t | where type in ('a', 'b')"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(f("t | where type == 'a' or type == 'b'"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(f("t | where type == 'a' or name == 'b'"), None);
        assert_eq!(f("t | where type != 'a'"), None);
        assert_eq!(f("t | project type | where type == 'a'"), None);
        let limit = |q: &str| parse(q).unwrap().row_limit();
        assert_eq!(limit("t | take 5"), Some(5));
        assert_eq!(limit("t | where type =~ 'a' | limit 2"), Some(2));
        assert_eq!(limit("t | where type =~ 'a' or type =~ 'b' | take 2"), Some(2));
        // `==` is case-sensitive: the type filter (lower-cased) is wider than the condition.
        assert_eq!(limit("t | where type == 'A' | take 2"), None);
        assert_eq!(limit("t | where type == 'a' | take 2"), Some(2));
        assert_eq!(limit("t | where type =~ 'a' and name == 'x' | take 2"), None);
        assert_eq!(limit("t | order by name | take 2"), None);
        assert_eq!(limit("t"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any text: a query or an error, never a panic.
        #[test]
        fn random_text_never_panics(text in "\\PC{0,80}") {
            let _ = parse(&text);
        }

        /// Text made of KQL's own words in random order: still no panic.
        #[test]
        fn random_kql_words_never_panic(words in prop::collection::vec(prop::sample::select(vec![
            "securityresources", "|", "where", "project", "extend", "summarize", "by", "count()",
            "join", "(", ")", "on", "$left.a", "==", "=~", "'x'", "1", "and", "or", "not(", ",",
            "mv-expand", "project-away", "order", "asc", "top", "take", "in", "!in", "contains",
            "properties.a[0]", "['b']", "=", "-", "+", "*", "/", "iff(", "case(", "\r\n", "//c\n",
        ]), 0..24)) {
            let _ = parse(&words.join(" "));
        }
    }
}
