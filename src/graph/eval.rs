//! Evaluation of a parsed query over tables of JSON values. KQL's semantics where a user would
//! notice: `==` is case-sensitive and `=~` is not; `contains`, `has` (whole terms), `startswith`
//! and `endswith` ignore case unless spelled `_cs`; nulls propagate through arithmetic and make
//! comparisons fail; `order by` sorts descending by default with nulls last; unnamed columns get
//! KQL's names (`properties_score_current`, `count_`, `sum_weight`, `Column1`).

use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};

use super::kql::{
    format_timespan, AggFunc, Aggregate, BinOp, Expr, Func, JoinKind, Named, Operator, Query,
    SortKey,
};
use super::{ErrorKind, Pos, QueryError};

/// A table: named columns and rows of values (`null` is KQL's null).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// The most rows any step may produce (a join of large tables is refused, not attempted).
pub const MAX_ROWS: usize = 500_000;

impl Table {
    fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The rows as objects, columns in order (Resource Graph's `objectArray`).
    pub fn objects(&self, rows: std::ops::Range<usize>) -> Vec<Value> {
        self.rows[rows]
            .iter()
            .map(|row| {
                let map: Map<String, Value> =
                    self.columns.iter().cloned().zip(row.iter().cloned()).collect();
                Value::Object(map)
            })
            .collect()
    }

    /// Resource Graph's column type of each column (`string`, `integer`, `number`, `boolean`,
    /// `object`), from the values it holds; `declared` names the type of a column that holds only
    /// nulls (the table's own columns), otherwise such a column is a `string`.
    pub fn column_types(
        &self,
        declared: &dyn Fn(&str) -> Option<&'static str>,
    ) -> Vec<&'static str> {
        (0..self.columns.len())
            .map(|i| {
                let mut seen: Option<&'static str> = None;
                for row in &self.rows {
                    let t = match &row[i] {
                        Value::Null => continue,
                        Value::Bool(_) => "boolean",
                        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                        Value::Number(_) => "number",
                        Value::String(_) => "string",
                        Value::Array(_) | Value::Object(_) => "object",
                    };
                    seen = Some(match (seen, t) {
                        (None, t) => t,
                        (Some(a), b) if a == b => a,
                        (Some("integer"), "number") | (Some("number"), "integer") => "number",
                        _ => "object",
                    });
                }
                seen.or_else(|| declared(&self.columns[i])).unwrap_or("string")
            })
            .collect()
    }
}

/// The tables a query reads, in the order [`sources`] lists them.
/// A table a query reads, and what the query tells about the rows it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Lower-case table name.
    pub table: String,
    pub pos: Pos,
    /// Only rows of these (lower-case) types can matter ([`Query::type_filter`]).
    pub types: Option<Vec<String>>,
    /// At most this many rows (of those types) can matter ([`Query::row_limit`]).
    pub limit: Option<usize>,
}

pub fn sources(query: &Query) -> Vec<Source> {
    let mut out = vec![Source {
        table: query.table.clone(),
        pos: query.table_pos,
        types: query.type_filter(),
        limit: query.row_limit(),
    }];
    for op in &query.ops {
        if let Operator::Join { right, .. } = op {
            out.extend(sources(right));
        }
    }
    out
}

/// Run `query` over its tables, given in the order of [`sources`].
pub fn run(query: &Query, tables: &mut VecDeque<Table>) -> Result<Table, QueryError> {
    let mut table = tables.pop_front().ok_or_else(|| {
        QueryError::new(ErrorKind::Semantic, query.table_pos, &query.table, "no such table")
    })?;
    for op in &query.ops {
        table = apply(op, table, tables)?;
        if table.rows.len() > MAX_ROWS {
            return Err(QueryError::new(
                ErrorKind::Semantic,
                query.table_pos,
                &query.table,
                format!("the query produces more than {MAX_ROWS} rows in one step"),
            ));
        }
    }
    Ok(table)
}

/// Every column an expression names exists in `columns`.
fn check(expr: &Expr, columns: &[String]) -> Result<(), QueryError> {
    match expr {
        Expr::Lit(_) => Ok(()),
        Expr::Column(name, pos) => {
            if columns.iter().any(|c| c == name) {
                Ok(())
            } else {
                Err(QueryError::new(
                    ErrorKind::Semantic,
                    *pos,
                    name,
                    format!("there is no column '{name}' here (column names are case-sensitive)"),
                ))
            }
        }
        Expr::Member(base, _) | Expr::Neg(base) => check(base, columns),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => {
            check(a, columns)?;
            check(b, columns)
        }
        Expr::In { expr, list, .. } => {
            check(expr, columns)?;
            list.iter().try_for_each(|e| check(e, columns))
        }
        Expr::Call(_, args) | Expr::Agg(_, args) => args.iter().try_for_each(|e| check(e, columns)),
    }
}

/// A `summarize` column names table columns only inside its aggregates' arguments.
fn check_aggregate(expr: &Expr, columns: &[String]) -> Result<(), QueryError> {
    match expr {
        Expr::Agg(_, args) => args.iter().try_for_each(|e| check(e, columns)),
        Expr::Lit(_) => Ok(()),
        Expr::Column(name, pos) => Err(QueryError::new(
            ErrorKind::Semantic,
            *pos,
            name,
            format!("'{name}' is outside an aggregate function: name it in 'by' or aggregate it"),
        )),
        Expr::Member(b, _) | Expr::Neg(b) => check_aggregate(b, columns),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => {
            check_aggregate(a, columns)?;
            check_aggregate(b, columns)
        }
        Expr::In { expr, list, .. } => {
            check_aggregate(expr, columns)?;
            list.iter().try_for_each(|e| check_aggregate(e, columns))
        }
        Expr::Call(_, args) => args.iter().try_for_each(|e| check_aggregate(e, columns)),
    }
}

/// `expr` with each aggregate replaced by its value over `members`.
fn fold_aggregates(expr: &Expr, table: &Table, members: &[usize]) -> Expr {
    let fold = |e: &Expr| Box::new(fold_aggregates(e, table, members));
    match expr {
        Expr::Agg(func, args) => Expr::Lit(aggregate(*func, args, table, members)),
        Expr::Lit(_) | Expr::Column(..) => expr.clone(),
        Expr::Member(b, k) => Expr::Member(fold(b), k.clone()),
        Expr::Neg(b) => Expr::Neg(fold(b)),
        Expr::Index(a, b) => Expr::Index(fold(a), fold(b)),
        Expr::Binary(op, a, b) => Expr::Binary(*op, fold(a), fold(b)),
        Expr::In { expr, list, negated, ci } => Expr::In {
            expr: fold(expr),
            list: list.iter().map(|e| fold_aggregates(e, table, members)).collect(),
            negated: *negated,
            ci: *ci,
        },
        Expr::Call(f, args) => {
            Expr::Call(*f, args.iter().map(|e| fold_aggregates(e, table, members)).collect())
        }
    }
}

/// Names for output columns: the given name, KQL's default name, or `Column{n}`; a repeated
/// name gets a numeric suffix.
fn unique(names: Vec<Option<String>>) -> Vec<String> {
    let mut unnamed = 0;
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let base = name.unwrap_or_else(|| {
            unnamed += 1;
            format!("Column{unnamed}")
        });
        out.push(dedupe(&base, &out));
    }
    out
}

fn dedupe(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_string();
    }
    (1..).map(|n| format!("{base}{n}")).find(|c| !taken.iter().any(|t| t == c)).unwrap_or_default()
}

fn named_column(n: &Named) -> Option<String> {
    n.name.clone().or_else(|| n.expr.default_name())
}

fn apply(op: &Operator, table: Table, tables: &mut VecDeque<Table>) -> Result<Table, QueryError> {
    match op {
        Operator::Where(e) => {
            check(e, &table.columns)?;
            let Table { columns, rows } = table;
            let rows = rows.into_iter().filter(|r| truthy(&eval(e, &columns, r))).collect();
            Ok(Table { columns, rows })
        }
        Operator::Extend(items) => {
            let mut t = table;
            for item in items {
                check(&item.expr, &t.columns)?;
                let values: Vec<Value> =
                    t.rows.iter().map(|r| eval(&item.expr, &t.columns, r)).collect();
                let name = named_column(item).unwrap_or_else(|| unique_unnamed(&t.columns));
                match t.index(&name) {
                    Some(i) => t.rows.iter_mut().zip(values).for_each(|(r, v)| r[i] = v),
                    None => {
                        t.columns.push(name);
                        t.rows.iter_mut().zip(values).for_each(|(r, v)| r.push(v));
                    }
                }
            }
            Ok(t)
        }
        Operator::Project(items) => {
            for item in items {
                check(&item.expr, &table.columns)?;
            }
            let columns = unique(items.iter().map(named_column).collect());
            let rows = table
                .rows
                .iter()
                .map(|r| items.iter().map(|i| eval(&i.expr, &table.columns, r)).collect())
                .collect();
            Ok(Table { columns, rows })
        }
        Operator::ProjectAway(cols) => {
            let mut drop = Vec::new();
            for (name, pos) in cols {
                let i = table.index(name).ok_or_else(|| {
                    QueryError::new(
                        ErrorKind::Semantic,
                        *pos,
                        name,
                        format!("there is no column '{name}' to remove"),
                    )
                })?;
                drop.push(i);
            }
            let keep: Vec<usize> = (0..table.columns.len()).filter(|i| !drop.contains(i)).collect();
            Ok(select(&table, &keep))
        }
        Operator::ProjectRename(pairs) => {
            let mut t = table;
            for (new, old, pos) in pairs {
                let i = t.index(old).ok_or_else(|| {
                    QueryError::new(
                        ErrorKind::Semantic,
                        *pos,
                        old,
                        format!("there is no column '{old}' to rename"),
                    )
                })?;
                t.columns[i] = new.clone();
            }
            Ok(t)
        }
        Operator::Summarize { aggregates, by } => summarize(table, aggregates, by),
        Operator::Distinct(items) => summarize(table, &[], items),
        Operator::Sort(keys) => {
            for k in keys {
                check(&k.expr, &table.columns)?;
            }
            Ok(sort(table, keys))
        }
        Operator::Top { n, key } => {
            check(&key.expr, &table.columns)?;
            let mut t = sort(table, std::slice::from_ref(key));
            t.rows.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            Ok(t)
        }
        Operator::Take(n) => {
            let mut t = table;
            t.rows.truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            Ok(t)
        }
        Operator::Count => Ok(Table {
            columns: vec!["Count".into()],
            rows: vec![vec![Value::from(table.rows.len())]],
        }),
        Operator::MvExpand { name, expr } => {
            check(expr, &table.columns)?;
            let target = name
                .clone()
                .or_else(|| expr.default_name())
                .unwrap_or_else(|| unique_unnamed(&table.columns));
            let mut t = Table { columns: table.columns.clone(), rows: Vec::new() };
            let at = match t.index(&target) {
                Some(i) => i,
                None => {
                    t.columns.push(target);
                    t.columns.len() - 1
                }
            };
            for row in &table.rows {
                let value = eval(expr, &table.columns, row);
                let items: Vec<Value> = match value {
                    Value::Array(items) => items,
                    // A property bag expands into one single-property bag per property.
                    Value::Object(map) => map
                        .into_iter()
                        .map(|(k, v)| Value::Object(Map::from_iter([(k, v)])))
                        .collect(),
                    other => vec![other],
                };
                for item in items {
                    let mut r = row.clone();
                    if at == r.len() {
                        r.push(item);
                    } else {
                        r[at] = item;
                    }
                    t.rows.push(r);
                    if t.rows.len() > MAX_ROWS {
                        return Ok(t);
                    }
                }
            }
            Ok(t)
        }
        Operator::Join { kind, right, on } => {
            let right_table = run(right, tables)?;
            join(table, right_table, *kind, on)
        }
    }
}

fn unique_unnamed(columns: &[String]) -> String {
    (1..).map(|n| format!("Column{n}")).find(|c| !columns.contains(c)).unwrap_or_default()
}

fn select(table: &Table, keep: &[usize]) -> Table {
    Table {
        columns: keep.iter().map(|&i| table.columns[i].clone()).collect(),
        rows: table.rows.iter().map(|r| keep.iter().map(|&i| r[i].clone()).collect()).collect(),
    }
}

fn summarize(table: Table, aggregates: &[Aggregate], by: &[Named]) -> Result<Table, QueryError> {
    for b in by {
        check(&b.expr, &table.columns)?;
    }
    for a in aggregates {
        check_aggregate(&a.expr, &table.columns)?;
    }
    let mut names: Vec<Option<String>> = by.iter().map(named_column).collect();
    names.extend(aggregates.iter().map(|a| a.name.clone().or_else(|| a.expr.default_name())));
    let columns = unique(names);
    // Groups in the order their first row comes.
    let mut groups: Vec<(Vec<Value>, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let key: Vec<Value> = by.iter().map(|b| eval(&b.expr, &table.columns, row)).collect();
        let k = serde_json::to_string(&key).unwrap_or_default();
        match index.get(&k) {
            Some(&g) => groups[g].1.push(i),
            None => {
                index.insert(k, groups.len());
                groups.push((key, vec![i]));
            }
        }
    }
    // Without `by`, summarize answers one row even over no rows.
    if by.is_empty() && groups.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    let rows = groups
        .into_iter()
        .map(|(mut key, members)| {
            for a in aggregates {
                key.push(eval(&fold_aggregates(&a.expr, &table, &members), &[], &[]));
            }
            key
        })
        .collect();
    Ok(Table { columns, rows })
}

fn aggregate(func: AggFunc, args: &[Expr], table: &Table, members: &[usize]) -> Value {
    let values = || {
        members.iter().map(|&i| match args.first() {
            Some(e) => eval(e, &table.columns, &table.rows[i]),
            None => Value::Null,
        })
    };
    let non_null = || values().filter(|v| !v.is_null());
    match func {
        AggFunc::Count => Value::from(members.len()),
        AggFunc::CountIf => Value::from(values().filter(truthy).count()),
        AggFunc::Sum => {
            let nums: Vec<Number> = non_null().filter_map(|v| v.as_number().cloned()).collect();
            if nums.iter().all(Number::is_i64) {
                let total = nums.iter().filter_map(Number::as_i64).try_fold(0i64, i64::checked_add);
                match total {
                    Some(t) => Value::from(t),
                    None => real(nums.iter().filter_map(Number::as_f64).sum()),
                }
            } else {
                real(nums.iter().filter_map(Number::as_f64).sum())
            }
        }
        AggFunc::Avg => {
            let nums: Vec<f64> = non_null().filter_map(|v| v.as_f64()).collect();
            if nums.is_empty() {
                Value::Null
            } else {
                real(nums.iter().sum::<f64>() / nums.len() as f64)
            }
        }
        AggFunc::Min => non_null().min_by(compare).unwrap_or(Value::Null),
        AggFunc::Max => non_null().max_by(compare).unwrap_or(Value::Null),
        AggFunc::DCount => {
            let distinct: HashSet<String> =
                non_null().map(|v| serde_json::to_string(&v).unwrap_or_default()).collect();
            Value::from(distinct.len())
        }
        AggFunc::MakeList => Value::Array(non_null().collect()),
        AggFunc::MakeSet => {
            let mut seen = HashSet::new();
            Value::Array(
                non_null()
                    .filter(|v| seen.insert(serde_json::to_string(v).unwrap_or_default()))
                    .collect(),
            )
        }
        AggFunc::TakeAny => non_null().next().unwrap_or(Value::Null),
    }
}

fn sort(table: Table, keys: &[SortKey]) -> Table {
    let Table { columns, rows } = table;
    let mut keyed: Vec<(Vec<Value>, Vec<Value>)> = rows
        .into_iter()
        .map(|r| (keys.iter().map(|k| eval(&k.expr, &columns, &r)).collect(), r))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        for (i, k) in keys.iter().enumerate() {
            let nulls_first = k.nulls_first.unwrap_or(!k.desc);
            let o = match (a[i].is_null(), b[i].is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                _ if k.desc => compare(&b[i], &a[i]),
                _ => compare(&a[i], &b[i]),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    Table { columns, rows: keyed.into_iter().map(|(_, r)| r).collect() }
}

/// One side of a join condition: `$left.x`/`$right.x` or a plain column (both sides).
fn side(e: &Expr, want: &str) -> Option<Expr> {
    match e {
        Expr::Member(base, name) => match base.as_ref() {
            Expr::Column(s, pos) if s == want => Some(Expr::Column(name.clone(), *pos)),
            _ => None,
        },
        Expr::Column(..) => Some(e.clone()),
        _ => None,
    }
}

fn join(
    left: Table,
    right: Table,
    kind: JoinKind,
    on: &[(Expr, Expr)],
) -> Result<Table, QueryError> {
    let mut lkeys = Vec::new();
    let mut rkeys = Vec::new();
    for (a, b) in on {
        let (l, r) = match (side(a, "$left"), side(b, "$right")) {
            (Some(l), Some(r)) => (l, r),
            _ => match (side(b, "$left"), side(a, "$right")) {
                (Some(l), Some(r)) => (l, r),
                _ => {
                    let pos = match a {
                        Expr::Column(_, p) => *p,
                        Expr::Member(b, _) => match b.as_ref() {
                            Expr::Column(_, p) => *p,
                            _ => Pos::default(),
                        },
                        _ => Pos::default(),
                    };
                    return Err(QueryError::new(
                        ErrorKind::Parse,
                        pos,
                        "on",
                        "a join condition compares $left.column with $right.column",
                    ));
                }
            },
        };
        check(&l, &left.columns)?;
        check(&r, &right.columns)?;
        lkeys.push(l);
        rkeys.push(r);
    }
    let key = |keys: &[Expr], columns: &[String], row: &[Value]| -> Option<String> {
        let values: Vec<Value> = keys.iter().map(|k| eval(k, columns, row)).collect();
        // Null keys match nothing.
        if values.iter().any(Value::is_null) {
            return None;
        }
        serde_json::to_string(&values).ok()
    };
    let mut right_index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, row) in right.rows.iter().enumerate() {
        if let Some(k) = key(&rkeys, &right.columns, row) {
            right_index.entry(k).or_default().push(i);
        }
    }
    let mut columns = left.columns.clone();
    for c in &right.columns {
        let name = dedupe(c, &columns);
        columns.push(name);
    }
    let mut rows = Vec::new();
    let mut seen_left = HashSet::new();
    for row in &left.rows {
        let k = key(&lkeys, &left.columns, row);
        if kind == JoinKind::InnerUnique {
            match &k {
                Some(k) if !seen_left.insert(k.clone()) => continue,
                _ => {}
            }
        }
        let matches = k.as_ref().and_then(|k| right_index.get(k));
        match matches {
            Some(ms) => {
                for &m in ms {
                    let mut r = row.clone();
                    r.extend(right.rows[m].iter().cloned());
                    rows.push(r);
                    if rows.len() > MAX_ROWS {
                        return Err(QueryError::new(
                            ErrorKind::Semantic,
                            Pos::default(),
                            "join",
                            format!("the join produces more than {MAX_ROWS} rows"),
                        ));
                    }
                }
            }
            None if kind == JoinKind::LeftOuter => {
                let mut r = row.clone();
                r.extend(std::iter::repeat_n(Value::Null, right.columns.len()));
                rows.push(r);
            }
            None => {}
        }
    }
    Ok(Table { columns, rows })
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

fn real(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// `tostring`: strings as they are, numbers and booleans as text, null as "", dynamic values as
/// compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A total order for sorting and min/max: null < bool < number < string < array < object.
fn compare(a: &Value, b: &Value) -> Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ if rank(a) == rank(b) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// Is `term` a whole term of `text` (terms are runs of letters and digits)?
fn has_term(text: &str, term: &str) -> bool {
    if term.is_empty() {
        return true;
    }
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(at) = text[from..].find(term) {
        let start = from + at;
        let end = start + term.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let starts_term = !alnum(before) || !term.chars().next().is_some_and(char::is_alphanumeric);
        let ends_term =
            !alnum(after) || !term.chars().next_back().is_some_and(char::is_alphanumeric);
        if starts_term && ends_term {
            return true;
        }
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn string_op(op: BinOp, a: &Value, b: &Value) -> Value {
    let (negated, cs) = match op {
        BinOp::Contains { negated, cs }
        | BinOp::Has { negated, cs }
        | BinOp::StartsWith { negated, cs }
        | BinOp::EndsWith { negated, cs } => (negated, cs),
        _ => return Value::Null,
    };
    let (mut x, mut y) = (to_text(a), to_text(b));
    if !cs {
        x = x.to_lowercase();
        y = y.to_lowercase();
    }
    let found = match op {
        BinOp::Contains { .. } => x.contains(&y),
        BinOp::Has { .. } => has_term(&x, &y),
        BinOp::StartsWith { .. } => x.starts_with(&y),
        _ => x.ends_with(&y),
    };
    Value::Bool(found != negated)
}

fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Value {
    let (Some(x), Some(y)) = (a.as_number(), b.as_number()) else { return Value::Null };
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div => x.checked_div(y),
            _ => x.checked_rem(y),
        };
        return r.map_or(Value::Null, Value::from);
    }
    let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else { return Value::Null };
    real(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        _ => x % y,
    })
}

fn lookup(columns: &[String], row: &[Value], name: &str) -> Value {
    columns.iter().position(|c| c == name).and_then(|i| row.get(i)).cloned().unwrap_or(Value::Null)
}

/// Evaluate a scalar expression over one row.
pub fn eval(e: &Expr, columns: &[String], row: &[Value]) -> Value {
    match e {
        Expr::Lit(v) => v.clone(),
        Expr::Column(name, _) => lookup(columns, row, name),
        Expr::Member(base, key) => match eval(base, columns, row) {
            Value::Object(mut map) => map.remove(key).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Expr::Index(base, index) => {
            let (b, i) = (eval(base, columns, row), eval(index, columns, row));
            match (b, i) {
                (Value::Array(items), Value::Number(n)) => {
                    let len = items.len() as i64;
                    let at = n.as_i64().map(|i| if i < 0 { len + i } else { i });
                    at.and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| items.into_iter().nth(i))
                        .unwrap_or(Value::Null)
                }
                (Value::Object(mut map), Value::String(k)) => map.remove(&k).unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
        Expr::Neg(inner) => match eval(inner, columns, row) {
            // A negative timespan (`-1d`).
            Value::String(t) => parse_timespan(&t)
                .map_or(Value::Null, |seconds| Value::String(format_timespan(-seconds))),
            v => arithmetic(BinOp::Sub, &Value::from(0), &v),
        },
        Expr::Binary(op, l, r) => {
            let a = eval(l, columns, row);
            match op {
                // Three-valued logic: false wins for `and`, true wins for `or`.
                BinOp::And => {
                    if a == Value::Bool(false) {
                        return Value::Bool(false);
                    }
                    let b = eval(r, columns, row);
                    match (a, b) {
                        (_, Value::Bool(false)) => Value::Bool(false),
                        (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                        _ => Value::Null,
                    }
                }
                BinOp::Or => {
                    if a == Value::Bool(true) {
                        return Value::Bool(true);
                    }
                    let b = eval(r, columns, row);
                    match (a, b) {
                        (_, Value::Bool(true)) => Value::Bool(true),
                        (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                        _ => Value::Null,
                    }
                }
                _ => binary(*op, &a, &eval(r, columns, row)),
            }
        }
        Expr::In { expr, list, negated, ci } => {
            let v = eval(expr, columns, row);
            if v.is_null() {
                return Value::Bool(*negated);
            }
            let found = list.iter().any(|item| {
                let w = eval(item, columns, row);
                if *ci {
                    to_text(&v).to_lowercase() == to_text(&w).to_lowercase()
                } else {
                    equal(&v, &w)
                }
            });
            Value::Bool(found != *negated)
        }
        Expr::Call(f, args) => call(*f, args, columns, row),
        // Replaced by their values before a summarize column is evaluated.
        Expr::Agg(..) => Value::Null,
    }
}

fn binary(op: BinOp, a: &Value, b: &Value) -> Value {
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arithmetic(op, a, b),
        BinOp::Contains { .. }
        | BinOp::Has { .. }
        | BinOp::StartsWith { .. }
        | BinOp::EndsWith { .. } => string_op(op, a, b),
        _ if a.is_null() || b.is_null() => Value::Null,
        BinOp::Eq => Value::Bool(equal(a, b)),
        BinOp::Ne => Value::Bool(!equal(a, b)),
        BinOp::EqCi | BinOp::NeCi => {
            let same = to_text(a).to_lowercase() == to_text(b).to_lowercase();
            Value::Bool(same == (op == BinOp::EqCi))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let comparable = matches!(
                (a, b),
                (Value::Number(_), Value::Number(_)) | (Value::String(_), Value::String(_))
            );
            if !comparable {
                return Value::Null;
            }
            let o = compare(a, b);
            Value::Bool(match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Le => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
        BinOp::And | BinOp::Or => Value::Null,
    }
}

// Datetimes and timespans are carried as text in one fixed form each, so that comparing two of
// them compares the times: datetimes as UTC `yyyy-MM-ddTHH:mm:ss.fffffffZ` (the API's own form),
// timespans as KQL prints them, `[-]d.hh:mm:ss[.fffffff]`.

/// A datetime in the fixed form.
pub fn format_datetime(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

/// An RFC 3339 datetime, or a date alone (midnight UTC).
fn parse_datetime(text: &str) -> Option<time::OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Some(t);
    }
    let date =
        time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc())
}

/// Seconds of a timespan in KQL's printed form.
fn parse_timespan(text: &str) -> Option<f64> {
    let (sign, body) = match text.trim().strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.trim()),
    };
    let (days, clock) = match body.split_once(':') {
        Some((head, _)) => match head.split_once('.') {
            Some((d, _)) => (d.parse::<f64>().ok()?, &body[d.len() + 1..]),
            None => (0.0, body),
        },
        None => return None,
    };
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next().unwrap_or("0").parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(sign * (days * 86_400.0 + h * 3_600.0 + m * 60.0 + s))
}

/// KQL's "empty": null or the empty string.
fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn call(f: Func, args: &[Expr], columns: &[String], row: &[Value]) -> Value {
    let arg = |i: usize| args.get(i).map_or(Value::Null, |e| eval(e, columns, row));
    match f {
        Func::ToString => Value::String(to_text(&arg(0))),
        Func::ToDouble => to_f64(&arg(0)).map_or(Value::Null, real),
        Func::ToLong => match arg(0) {
            Value::Number(n) if n.is_i64() => Value::Number(n),
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => to_f64(&Value::String(s))
                    .filter(|f| f.is_finite())
                    .map_or(Value::Null, |f| Value::from(f.trunc() as i64)),
            },
            other => to_f64(&other)
                .filter(|f| f.is_finite())
                .map_or(Value::Null, |f| Value::from(f.trunc() as i64)),
        },
        Func::ToBool => match arg(0) {
            Value::Bool(b) => Value::Bool(b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            Value::Number(n) => Value::Bool(n.as_f64() != Some(0.0)),
            _ => Value::Null,
        },
        Func::ToLower => Value::String(to_text(&arg(0)).to_lowercase()),
        Func::ToUpper => Value::String(to_text(&arg(0)).to_uppercase()),
        Func::ToDynamic => match arg(0) {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            other => other,
        },
        Func::Iff => {
            if truthy(&arg(0)) {
                arg(1)
            } else {
                arg(2)
            }
        }
        Func::Case => {
            let mut i = 0;
            while i + 1 < args.len() {
                if truthy(&arg(i)) {
                    return arg(i + 1);
                }
                i += 2;
            }
            arg(args.len().saturating_sub(1))
        }
        Func::IsEmpty => Value::Bool(empty(&arg(0))),
        Func::IsNotEmpty => Value::Bool(!empty(&arg(0))),
        Func::IsNull => Value::Bool(arg(0).is_null()),
        Func::IsNotNull => Value::Bool(!arg(0).is_null()),
        Func::StrCat => {
            Value::String((0..args.len()).map(|i| to_text(&arg(i))).collect::<String>())
        }
        Func::Round => {
            let digits = match arg(1) {
                Value::Number(n) => n.as_i64().unwrap_or(0),
                _ => 0,
            }
            .clamp(-15, 15);
            match arg(0) {
                Value::Number(n) if n.is_i64() && digits >= 0 => Value::Number(n),
                v => match to_f64(&v) {
                    Some(x) if v.is_number() => {
                        let scale = 10f64.powi(digits as i32);
                        real((x * scale).round() / scale)
                    }
                    _ => Value::Null,
                },
            }
        }
        Func::Not => match arg(0) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Func::Strlen => Value::from(to_text(&arg(0)).chars().count()),
        Func::ArrayLength => match arg(0) {
            Value::Array(a) => Value::from(a.len()),
            _ => Value::Null,
        },
        Func::Now => Value::String(format_datetime(time::OffsetDateTime::now_utc())),
        Func::Ago => match parse_timespan(&to_text(&arg(0))) {
            Some(seconds) => time::Duration::checked_seconds_f64(seconds)
                .and_then(|d| time::OffsetDateTime::now_utc().checked_sub(d))
                .map_or(Value::Null, |t| Value::String(format_datetime(t))),
            None => Value::Null,
        },
        Func::ToDateTime => match arg(0) {
            Value::String(s) => {
                parse_datetime(&s).map_or(Value::Null, |t| Value::String(format_datetime(t)))
            }
            _ => Value::Null,
        },
        Func::ToTimespan => match arg(0) {
            Value::String(s) => {
                parse_timespan(&s).map_or(Value::Null, |t| Value::String(format_timespan(t)))
            }
            _ => Value::Null,
        },
        Func::Coalesce => (0..args.len()).map(arg).find(|v| !empty(v)).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::kql::parse;
    use serde_json::json;

    /// A small table: three resources of two subscriptions.
    fn table() -> Table {
        Table {
            columns: vec!["name".into(), "sub".into(), "properties".into(), "n".into()],
            rows: vec![
                vec![
                    json!("Alpha"),
                    json!("s1"),
                    json!({"score": {"current": 1.5, "max": 3}, "tags": ["a", "b"]}),
                    json!(1),
                ],
                vec![
                    json!("beta-one"),
                    json!("s1"),
                    json!({"score": {"current": 2, "max": 4}, "tags": []}),
                    json!(null),
                ],
                vec![
                    json!("Gamma"),
                    json!("s2"),
                    json!({"score": {"current": 0, "max": 0}}),
                    json!(3),
                ],
            ],
        }
    }

    fn run_on(t: Table, q: &str) -> Result<Table, QueryError> {
        let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let n = sources(&query).len();
        let mut tables: VecDeque<Table> = std::iter::repeat_n(t, n).collect();
        run(&query, &mut tables)
    }

    fn objects(q: &str) -> Vec<Value> {
        let t = run_on(table(), q).unwrap_or_else(|e| panic!("{q}: {e}"));
        t.objects(0..t.rows.len())
    }

    fn names(q: &str) -> Vec<String> {
        objects(q).iter().map(|r| r["name"].as_str().unwrap_or("").to_string()).collect()
    }

    #[test]
    fn string_operators_follow_kql_case_rules() {
        assert_eq!(
            names("t | where name == 'alpha'"),
            Vec::<String>::new(),
            "== is case-sensitive"
        );
        assert_eq!(names("t | where name =~ 'alpha'"), ["Alpha"]);
        assert_eq!(names("t | where name !~ 'alpha'"), ["beta-one", "Gamma"]);
        assert_eq!(names("t | where name contains 'AMM'"), ["Gamma"]);
        assert_eq!(names("t | where name contains_cs 'AMM'"), Vec::<String>::new());
        assert_eq!(names("t | where name !contains 'a'"), Vec::<String>::new());
        // has: whole terms only.
        assert_eq!(names("t | where name has 'ONE'"), ["beta-one"]);
        assert_eq!(names("t | where name has 'on'"), Vec::<String>::new());
        assert_eq!(names("t | where name !has 'beta'"), ["Alpha", "Gamma"]);
        assert_eq!(names("t | where name startswith 'BE'"), ["beta-one"]);
        assert_eq!(names("t | where name endswith 'MA'"), ["Gamma"]);
        assert_eq!(names("t | where name in ('Alpha', 'gamma')"), ["Alpha"]);
        assert_eq!(names("t | where name in~ ('Alpha', 'gamma')"), ["Alpha", "Gamma"]);
        assert_eq!(names("t | where name !in ('Alpha')"), ["beta-one", "Gamma"]);
        assert_eq!(names("t | where not(name == 'Alpha') and sub == 's1'"), ["beta-one"]);
    }

    #[test]
    fn nulls_propagate_and_fail_comparisons() {
        // n is null in beta-one: comparisons with null are not true, either way.
        assert_eq!(names("t | where n > 0"), ["Alpha", "Gamma"]);
        assert_eq!(names("t | where n != 1"), ["Gamma"]);
        assert_eq!(names("t | where isnull(n)"), ["beta-one"]);
        assert_eq!(names("t | where isnotnull(n) and isnotempty(name)"), ["Alpha", "Gamma"]);
        let rows =
            objects("t | project name, x = n + 1, y = n * 2.5, z = tostring(n), e = isempty(n)");
        assert_eq!(rows[1]["x"], Value::Null);
        assert_eq!(rows[1]["z"], "");
        assert_eq!(rows[1]["e"], true);
        assert_eq!(rows[0]["x"], 2);
        assert_eq!(rows[0]["y"], 2.5);
        // Missing properties are null; integer division truncates; / 0 is null.
        let rows = objects(
            "t | project a = properties.nope.deeper, b = 7 / 2, c = 7 % 3, d = 1 / 0, e = 1.0 / 4",
        );
        assert_eq!(rows[0], json!({"a": null, "b": 3, "c": 1, "d": null, "e": 0.25}));
    }

    #[test]
    fn functions_convert_as_kql_does() {
        let rows = objects(
            "t | where name == 'Alpha' | project a = todouble('2.5'), b = toint('7'), c = tolong(2.9), \
             d = tolower(name), e = toupper(name), f = strcat(name, '-', n), g = round(2.345, 2), \
             h = iff(n == 1, 'one', 'other'), i = case(n == 2, 'two', n == 1, 'one', 'none'), \
             j = tostring(properties.score), k = toreal(properties.score.max), l = array_length(properties.tags), \
             m = properties.tags[-1], o = coalesce(properties.nope, '', 'x'), p = strlen(name), q = tobool('TRUE')",
        );
        assert_eq!(
            rows[0],
            json!({"a": 2.5, "b": 7, "c": 2, "d": "alpha", "e": "ALPHA", "f": "Alpha-1", "g": 2.35,
                   "h": "one", "i": "one", "j": "{\"current\":1.5,\"max\":3}", "k": 3.0, "l": 2,
                   "m": "b", "o": "x", "p": 5, "q": true})
        );
    }

    #[test]
    fn summarize_names_columns_as_kql_and_groups_in_order() {
        let t = run_on(
            table(),
            "t | summarize count(), countif(n > 0), sum(n), avg(n), min(name), max(properties.score.current), dcount(sub), make_list(name), make_set(sub), c = round(sum(properties.score.current) * 2, 1) by sub",
        )
        .unwrap();
        assert_eq!(
            t.columns,
            [
                "sub",
                "count_",
                "countif_",
                "sum_n",
                "avg_n",
                "min_name",
                "max_properties_score_current",
                "dcount_sub",
                "list_name",
                "set_sub",
                "c"
            ]
        );
        assert_eq!(
            t.rows[0],
            vec![
                json!("s1"),
                json!(2),
                json!(1),
                json!(1),
                json!(1.0),
                json!("Alpha"),
                json!(2),
                json!(1),
                json!(["Alpha", "beta-one"]),
                json!(["s1"]),
                json!(7.0)
            ]
        );
        assert_eq!(t.rows[1][0], "s2");
        // No `by`: one row, even over nothing.
        let t = run_on(table(), "t | where name == 'none' | summarize count(), sum(n)").unwrap();
        assert_eq!(t.rows, vec![vec![json!(0), json!(0)]]);
        // A bare column outside an aggregate is refused.
        let e = run_on(table(), "t | summarize sum(n) + n").unwrap_err();
        assert_eq!((e.kind, e.token.as_str()), (ErrorKind::Semantic, "n"));
    }

    #[test]
    fn sort_top_take_distinct_and_count() {
        // Descending by default, nulls last; ascending puts nulls first.
        assert_eq!(names("t | order by n"), ["Gamma", "Alpha", "beta-one"]);
        assert_eq!(names("t | sort by n asc"), ["beta-one", "Alpha", "Gamma"]);
        assert_eq!(names("t | sort by n asc nulls last"), ["Alpha", "Gamma", "beta-one"]);
        assert_eq!(names("t | top 2 by todouble(properties.score.current)"), ["beta-one", "Alpha"]);
        assert_eq!(names("t | take 1"), ["Alpha"]);
        assert_eq!(objects("t | distinct sub"), [json!({"sub": "s1"}), json!({"sub": "s2"})]);
        assert_eq!(objects("t | count"), [json!({"Count": 3})]);
        let t =
            run_on(table(), "t | project-away properties, n | project-rename who = name").unwrap();
        assert_eq!(t.columns, ["who", "sub"]);
        let t =
            run_on(table(), "t | extend n = 0, m = n + 1 | project n, m, tostring(name), 1 + 1")
                .unwrap();
        assert_eq!(t.columns, ["n", "m", "name", "Column1"]);
        assert_eq!(t.rows[0], vec![json!(0), json!(1), json!("Alpha"), json!(2)]);
    }

    #[test]
    fn mv_expand_and_joins() {
        // One row per element; an empty array drops the row; a missing value keeps it as null.
        let rows = objects("t | mv-expand tag = properties.tags | project name, tag");
        assert_eq!(
            rows,
            [
                json!({"name": "Alpha", "tag": "a"}),
                json!({"name": "Alpha", "tag": "b"}),
                json!({"name": "Gamma", "tag": null}),
            ]
        );
        // inner: every pair; the right's clashing columns get a suffix.
        let t =
            run_on(table(), "t | project name, sub | join kind=inner (t | project sub, n) on sub")
                .unwrap();
        assert_eq!(t.columns, ["name", "sub", "sub1", "n"]);
        assert_eq!(t.rows.len(), 5);
        // innerunique (the default): the left side once per key.
        let t = run_on(table(), "t | project sub | join (t | project sub, name) on sub").unwrap();
        assert_eq!(t.rows.len(), 3);
        // leftouter keeps unmatched left rows with nulls; $left/$right name the keys.
        let t = run_on(
            table(),
            "t | project name, sub | join kind=leftouter (t | where n == 3 | project s = sub, n) on $left.sub == $right.s",
        )
        .unwrap();
        let o = t.objects(0..t.rows.len());
        assert_eq!(o.len(), 3);
        assert_eq!(o[0]["n"], Value::Null);
        assert_eq!(o[2]["n"], 3);
        let e = run_on(table(), "t | join (t) on nope").unwrap_err();
        assert_eq!(e.token, "nope");
    }

    #[test]
    fn unknown_columns_are_refused_with_their_position_even_over_no_rows() {
        let empty = Table { columns: table().columns, rows: Vec::new() };
        let e = run_on(empty, "t\n| where Name == 'x'").unwrap_err();
        assert_eq!(
            (e.kind, e.pos, e.token.as_str()),
            (ErrorKind::Semantic, Pos { line: 2, column: 9 }, "Name")
        );
        let e = run_on(table(), "t | project-away nope").unwrap_err();
        assert_eq!(e.token, "nope");
    }

    #[test]
    fn column_types_come_from_values() {
        let t = run_on(table(), "t | project name, n, c = properties.score.current, b = n > 1, properties, z = properties.nope").unwrap();
        let types = t.column_types(&|c| (c == "z").then_some("object"));
        assert_eq!(types, ["string", "integer", "number", "boolean", "object", "object"]);
    }

    #[test]
    fn datetimes_and_timespans_compare_as_times() {
        let t = Table {
            columns: vec!["at".into()],
            rows: vec![
                vec![json!("2020-01-01T00:00:00Z")],
                vec![json!("2020-01-01T00:00:00.5+01:00")],
                vec![json!(format_datetime(time::OffsetDateTime::now_utc()))],
                vec![json!("not a date")],
            ],
        };
        let got = run_on(t.clone(), "t | where todatetime(at) > ago(1d) | count").unwrap();
        assert_eq!(got.rows, vec![vec![json!(1)]]);
        let got = run_on(t, "t | project d = todatetime(at), s = tostring(90m), n = totimespan('1.02:03:04.5'), x = tostring(-250ms)").unwrap();
        assert_eq!(
            got.rows[0],
            vec![
                json!("2020-01-01T00:00:00.0000000Z"),
                json!("01:30:00"),
                json!("1.02:03:04.5000000"),
                json!("-00:00:00.2500000")
            ]
        );
        assert_eq!(got.rows[1][0], "2019-12-31T23:00:00.5000000Z");
        assert_eq!(got.rows[3][0], Value::Null);
        assert_eq!(parse_timespan("2.00:00:00"), Some(172_800.0));
        assert!(format_datetime(time::OffsetDateTime::now_utc()).as_str() > "2026-01-01");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever parses runs to a table or an error over real-looking rows: never a panic.
        #[test]
        fn random_queries_never_panic(words in proptest::collection::vec(proptest::sample::select(vec![
            "t", "|", "where", "project", "extend", "summarize", "by", "count()", "sum(n)", "make_set(name)",
            "join", "kind=leftouter", "(t)", "on", "sub", "$left.sub", "$right.sub", "==", "=~", "!=", "<", "'x'",
            "1", "0", "-1", "2.5", "and", "or", "not(n)", "n", "name", ",", "x", "=", "mv-expand",
            "properties.tags", "properties.score.current", "properties.tags[-5]", "project-away",
            "order", "sort", "asc", "desc", "top", "take", "count", "distinct", "in", "(1,", "'a')",
            "contains", "has", "/", "%", "*", "+", "round(n,", "99)", "iff(n,", "1,", "2)", "case(",
            "tostring(", "todouble(", "ago(1d)", ")", "strcat(name,", "n)",
        ]), 1..20)) {
            let text = format!("t | {}", words.join(" "));
            if let Ok(query) = parse(&text) {
                let n = sources(&query).len();
                let mut tables: VecDeque<Table> = std::iter::repeat_n(table(), n).collect();
                let _ = run(&query, &mut tables);
            }
        }
    }

    #[test]
    fn has_matches_whole_terms() {
        assert!(has_term("microsoft.security/assessments", "security"));
        assert!(has_term("a b", "b"));
        assert!(!has_term("abc", "b"));
        assert!(has_term("x/y.z", "y.z"));
        assert!(!has_term("ab", "abc"));
    }
}
