//! Azure Resource Graph over securescore's data, apart from HTTP: the KQL subset ([`kql`]: tokens,
//! parser, AST), its evaluation over JSON rows ([`eval`]) and the tables a query reads
//! ([`table`]: the `securityresources` rows, built with the API's own rendering by the caller).
//! The handler (`api::resource_graph`) scopes, authorizes, pages and answers.

pub mod eval;
pub mod kql;
pub mod table;

pub use eval::Table;

/// A place in the query text: line and column, both from 1 (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not KQL: the parser could not read the query.
    Parse,
    /// KQL, but outside the subset this server evaluates.
    Unsupported,
    /// Read, but meaningless here: an unknown column or table, a wrong argument count.
    Semantic,
}

impl ErrorKind {
    /// The code of the error's detail entry (Resource Graph answers a `BadRequest` whose details
    /// say `InvalidQuery` and then what went wrong where).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Parse => "ParserFailure",
            ErrorKind::Unsupported => "UnsupportedQueryConstruct",
            ErrorKind::Semantic => "InvalidQueryContent",
        }
    }
}

/// Why a query was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub kind: ErrorKind,
    pub pos: Pos,
    /// The token or name at `pos`.
    pub token: String,
    pub message: String,
}

impl QueryError {
    pub fn new(kind: ErrorKind, pos: Pos, token: &str, message: impl Into<String>) -> Self {
        QueryError { kind, pos, token: token.to_string(), message: message.into() }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.message, self.pos)
    }
}
