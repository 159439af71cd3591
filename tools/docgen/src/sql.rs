//! A small reader of the migration SQL: the statement forms the services' migrations use, and
//! nothing else.
//!
//! Migrations are applied in order to a [`Schema`]: `CREATE TABLE` (columns with type, `NOT
//! NULL`, `DEFAULT`, `CHECK`, `PRIMARY KEY`, `REFERENCES`; table constraints `PRIMARY KEY`,
//! `UNIQUE`, `FOREIGN KEY … REFERENCES`, `CHECK`, named or not), `CREATE [UNIQUE] INDEX … ON`,
//! `ALTER TABLE … ENABLE|FORCE ROW LEVEL SECURITY` and `CREATE POLICY … ON … USING … WITH CHECK`.
//! Any other statement is an error naming it, so a migration in a new form fails the generator
//! (and the drift test) instead of vanishing from the documentation. Expressions (defaults,
//! checks, policies) are kept as their source text with whitespace collapsed.

use anyhow::{bail, Context, Result};

/// The tables a list of migrations leaves, in the order they were created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub uniques: Vec<Unique>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Table-level CHECK constraints: (name, expression).
    pub checks: Vec<(Option<String>, String)>,
    pub indexes: Vec<Index>,
    pub row_security: bool,
    pub row_security_forced: bool,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    pub check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    pub name: Option<String>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub table: String,
    pub ref_columns: Vec<String>,
    /// `ON DELETE` action, e.g. `CASCADE`.
    pub on_delete: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// Key expressions as written (`tenant_id`, `created_at DESC`).
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// `FOR <command>`; `ALL` when the statement names none.
    pub command: String,
    pub using: Option<String>,
    pub with_check: Option<String>,
}

impl Schema {
    /// Applies every statement of `sql` (one migration file).
    pub fn apply(&mut self, sql: &str) -> Result<()> {
        for statement in statements(sql)? {
            self.apply_statement(sql, &statement).with_context(|| {
                format!(
                    "unsupported or malformed statement `{}`",
                    excerpt(sql, &statement)
                )
            })?;
        }
        Ok(())
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut Table> {
        match self.tables.iter_mut().find(|t| t.name == name) {
            Some(t) => Ok(t),
            None => bail!("no table {name}"),
        }
    }

    fn apply_statement(&mut self, src: &str, tokens: &[Token]) -> Result<()> {
        let mut p = Parser { src, tokens, at: 0 };
        if p.eat_words(&["CREATE", "TABLE"]) {
            let name = p.ident()?;
            if self.table(&name).is_some() {
                bail!("table {name} created twice");
            }
            let body = p.parenthesized()?;
            p.end()?;
            let table = create_table(src, name, body)?;
            self.tables.push(table);
        } else if p.eat_word("CREATE") {
            let unique = p.eat_word("UNIQUE");
            if p.eat_word("INDEX") {
                let name = p.ident()?;
                p.expect_word("ON")?;
                let table = p.ident()?;
                let keys = split_on_commas(src, p.parenthesized()?)
                    .into_iter()
                    .map(|k| text(src, k))
                    .collect();
                p.end()?;
                self.table_mut(&table)?
                    .indexes
                    .push(Index { name, unique, keys });
            } else if !unique && p.eat_word("POLICY") {
                let name = p.ident()?;
                p.expect_word("ON")?;
                let table = p.ident()?;
                let command = if p.eat_word("FOR") {
                    p.ident()?.to_uppercase()
                } else {
                    "ALL".into()
                };
                let using = if p.eat_word("USING") {
                    Some(text(src, p.parenthesized()?))
                } else {
                    None
                };
                let with_check = if p.eat_words(&["WITH", "CHECK"]) {
                    Some(text(src, p.parenthesized()?))
                } else {
                    None
                };
                p.end()?;
                self.table_mut(&table)?.policies.push(Policy {
                    name,
                    command,
                    using,
                    with_check,
                });
            } else {
                bail!("not a CREATE TABLE, INDEX or POLICY");
            }
        } else if p.eat_words(&["ALTER", "TABLE"]) {
            let table = p.ident()?;
            let force = if p.eat_word("ENABLE") {
                false
            } else if p.eat_word("FORCE") {
                true
            } else {
                bail!("ALTER TABLE other than ENABLE/FORCE ROW LEVEL SECURITY");
            };
            p.expect_word("ROW")?;
            p.expect_word("LEVEL")?;
            p.expect_word("SECURITY")?;
            p.end()?;
            let t = self.table_mut(&table)?;
            if force {
                t.row_security_forced = true;
            } else {
                t.row_security = true;
            }
        } else {
            bail!("not a CREATE or ALTER TABLE statement");
        }
        Ok(())
    }
}

/// Applies `migrations` (SQL texts) in order to an empty schema.
pub fn schema_of<'a>(migrations: impl IntoIterator<Item = &'a str>) -> Result<Schema> {
    let mut schema = Schema::default();
    for sql in migrations {
        schema.apply(sql)?;
    }
    Ok(schema)
}

// --- lexing ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An identifier, keyword or number.
    Word,
    /// A quoted identifier (`"name"`).
    Quoted,
    /// A string literal.
    Str,
    /// Any other character (`(`, `)`, `,`, `;`, operators).
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

impl Token {
    fn text<'s>(&self, src: &'s str) -> &'s str {
        &src[self.start..self.end]
    }

    fn is_punct(&self, src: &str, c: &str) -> bool {
        self.kind == Kind::Punct && self.text(src) == c
    }

    fn is_word(&self, src: &str, word: &str) -> bool {
        self.kind == Kind::Word && self.text(src).eq_ignore_ascii_case(word)
    }
}

/// The tokens of `sql` (comments dropped), split into statements at top-level `;`.
fn statements(sql: &str) -> Result<Vec<Vec<Token>>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if sql[i..].starts_with("/*") {
            let Some(n) = sql[i + 2..].find("*/") else {
                bail!("unterminated comment at byte {i}");
            };
            i += n + 4;
            continue;
        }
        let kind = if c == b'\'' || c == b'"' {
            // A literal or quoted identifier; a doubled quote stands for one quote.
            i += 1;
            loop {
                match bytes.get(i) {
                    None => bail!("unterminated quote at byte {start}"),
                    Some(&q) if q == c && bytes.get(i + 1) == Some(&c) => i += 2,
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            if c == b'\'' {
                Kind::Str
            } else {
                Kind::Quoted
            }
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            Kind::Word
        } else {
            // One character: `sql` is UTF-8, step over the whole character.
            i += sql[i..].chars().next().map_or(1, char::len_utf8);
            Kind::Punct
        };
        let token = Token {
            kind,
            start,
            end: i,
        };
        if token.is_punct(sql, ";") {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(token);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// The source text from the first to the last token, whitespace runs collapsed to one space.
fn text(src: &str, tokens: &[Token]) -> String {
    match (tokens.first(), tokens.last()) {
        (Some(first), Some(last)) => src[first.start..last.end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn excerpt(src: &str, tokens: &[Token]) -> String {
    let t = text(src, tokens);
    match t.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &t[..at]),
        None => t,
    }
}

// --- parsing -----------------------------------------------------------------------------------

struct Parser<'a> {
    src: &'a str,
    tokens: &'a [Token],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.at)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_word(self.src, word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `words` only if all of them follow.
    fn eat_words(&mut self, words: &[&str]) -> bool {
        let all = words.iter().enumerate().all(|(n, w)| {
            self.tokens
                .get(self.at + n)
                .is_some_and(|t| t.is_word(self.src, w))
        });
        if all {
            self.at += words.len();
        }
        all
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            bail!("expected {word}")
        }
    }

    /// An identifier, unquoted (`users`, lowercased as PostgreSQL folds it) or quoted.
    fn ident(&mut self) -> Result<String> {
        let Some(t) = self.peek() else {
            bail!("expected a name at the end")
        };
        let name = match t.kind {
            Kind::Word => t.text(self.src).to_lowercase(),
            Kind::Quoted => {
                let quoted = t.text(self.src);
                quoted[1..quoted.len() - 1].replace("\"\"", "\"")
            }
            _ => bail!("expected a name, found `{}`", t.text(self.src)),
        };
        self.at += 1;
        Ok(name)
    }

    /// The tokens inside the parentheses that open here (brackets balanced).
    fn parenthesized(&mut self) -> Result<&'a [Token]> {
        if !self.peek().is_some_and(|t| t.is_punct(self.src, "(")) {
            bail!("expected (");
        }
        let open = self.at;
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            self.at += 1;
            match bracket(self.src, t) {
                1 => depth += 1,
                -1 => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(&self.tokens[open + 1..self.at - 1]);
                    }
                }
                _ => {}
            }
        }
        bail!("unbalanced parentheses")
    }

    /// The tokens up to (not including) the first top-level word of `stop`, or the end.
    fn until_word(&mut self, stop: &[&str]) -> &'a [Token] {
        let from = self.at;
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            if depth == 0 && stop.iter().any(|w| t.is_word(self.src, w)) {
                break;
            }
            depth += bracket(self.src, t);
            self.at += 1;
        }
        &self.tokens[from..self.at]
    }

    fn names(&mut self) -> Result<Vec<String>> {
        let inner = self.parenthesized()?;
        split_on_commas(self.src, inner)
            .into_iter()
            .map(|part| match part {
                [one] => Parser {
                    src: self.src,
                    tokens: part,
                    at: 0,
                }
                .ident()
                .with_context(|| format!("in `{}`", one.text(self.src))),
                _ => bail!("expected a column name, found `{}`", text(self.src, part)),
            })
            .collect()
    }

    fn end(&self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => bail!("unexpected `{}`", t.text(self.src)),
        }
    }
}

/// +1 for an opening bracket, -1 for a closing one, 0 otherwise.
fn bracket(src: &str, t: &Token) -> i32 {
    if t.kind != Kind::Punct {
        return 0;
    }
    match t.text(src) {
        "(" | "[" => 1,
        ")" | "]" => -1,
        _ => 0,
    }
}

/// `tokens` split at commas outside brackets.
fn split_on_commas<'t>(src: &str, tokens: &'t [Token]) -> Vec<&'t [Token]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut from = 0;
    for (i, t) in tokens.iter().enumerate() {
        depth += bracket(src, t);
        if depth == 0 && t.is_punct(src, ",") {
            parts.push(&tokens[from..i]);
            from = i + 1;
        }
    }
    if from < tokens.len() {
        parts.push(&tokens[from..]);
    }
    parts
}

/// Words that end a column's type or its DEFAULT expression.
const COLUMN_CONSTRAINTS: [&str; 9] = [
    "NOT",
    "NULL",
    "DEFAULT",
    "PRIMARY",
    "CHECK",
    "REFERENCES",
    "UNIQUE",
    "CONSTRAINT",
    "GENERATED",
];

fn create_table(src: &str, name: String, body: &[Token]) -> Result<Table> {
    let mut table = Table {
        name,
        ..Table::default()
    };
    for item in split_on_commas(src, body) {
        let mut p = Parser {
            src,
            tokens: item,
            at: 0,
        };
        let constraint_name = if p.eat_word("CONSTRAINT") {
            Some(p.ident()?)
        } else {
            None
        };
        if constraint_name.is_some()
            || ["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]
                .iter()
                .any(|w| p.peek().is_some_and(|t| t.is_word(src, w)))
        {
            table_constraint(&mut table, constraint_name, &mut p)?;
        } else {
            column(&mut table, &mut p)?;
        }
    }
    Ok(table)
}

fn table_constraint(table: &mut Table, name: Option<String>, p: &mut Parser<'_>) -> Result<()> {
    if p.eat_words(&["PRIMARY", "KEY"]) {
        if !table.primary_key.is_empty() {
            bail!("two primary keys");
        }
        table.primary_key = p.names()?;
    } else if p.eat_word("UNIQUE") {
        let columns = p.names()?;
        table.uniques.push(Unique { name, columns });
    } else if p.eat_words(&["FOREIGN", "KEY"]) {
        let columns = p.names()?;
        let mut fk = references(p, name, columns)?;
        if fk.ref_columns.is_empty() {
            // `REFERENCES t` without columns means t's primary key.
            fk.ref_columns = fk.columns.clone();
        }
        table.foreign_keys.push(fk);
    } else if p.eat_word("CHECK") {
        let expr = text(p.src, p.parenthesized()?);
        table.checks.push((name, expr));
    } else {
        bail!("unknown table constraint");
    }
    p.end()
}

/// `REFERENCES t [(cols)] [ON DELETE action]`, after the referencing columns.
fn references(
    p: &mut Parser<'_>,
    name: Option<String>,
    columns: Vec<String>,
) -> Result<ForeignKey> {
    p.expect_word("REFERENCES")?;
    let table = p.ident()?;
    let ref_columns = if p.peek().is_some_and(|t| t.is_punct(p.src, "(")) {
        p.names()?
    } else {
        Vec::new()
    };
    let on_delete = if p.eat_words(&["ON", "DELETE"]) {
        let action = p.until_word(&["ON", "NOT", "CHECK", "DEFAULT", "CONSTRAINT"]);
        Some(text(p.src, action).to_uppercase())
    } else {
        None
    };
    Ok(ForeignKey {
        name,
        columns,
        table,
        ref_columns,
        on_delete,
    })
}

fn column(table: &mut Table, p: &mut Parser<'_>) -> Result<()> {
    let name = p.ident()?;
    let sql_type = text(p.src, p.until_word(&COLUMN_CONSTRAINTS));
    if sql_type.is_empty() {
        bail!("column {name} has no type");
    }
    let mut column = Column {
        name,
        sql_type,
        not_null: false,
        default: None,
        check: None,
    };
    while p.peek().is_some() {
        if p.eat_words(&["NOT", "NULL"]) {
            column.not_null = true;
        } else if p.eat_word("NULL") {
            column.not_null = false;
        } else if p.eat_words(&["PRIMARY", "KEY"]) {
            if !table.primary_key.is_empty() {
                bail!("two primary keys");
            }
            table.primary_key = vec![column.name.clone()];
            column.not_null = true;
        } else if p.eat_word("UNIQUE") {
            table.uniques.push(Unique {
                name: None,
                columns: vec![column.name.clone()],
            });
        } else if p.eat_word("DEFAULT") {
            let expr = p.until_word(&COLUMN_CONSTRAINTS);
            column.default = Some(text(p.src, expr));
        } else if p.eat_word("CHECK") {
            column.check = Some(text(p.src, p.parenthesized()?));
        } else if p.peek().is_some_and(|t| t.is_word(p.src, "REFERENCES")) {
            let mut fk = references(p, None, vec![column.name.clone()])?;
            if fk.ref_columns.is_empty() {
                fk.ref_columns = vec!["id".into()];
            }
            table.foreign_keys.push(fk);
        } else {
            let rest = text(p.src, &p.tokens[p.at..]);
            bail!("column {}: unknown `{rest}`", column.name);
        }
    }
    table.columns.push(column);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_tables_keys_indexes_and_policies() {
        let schema = schema_of([
            "-- a comment; with a semicolon\n\
             CREATE TABLE a (\n  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),\n  \
             tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,\n  \
             tags text[] NOT NULL DEFAULT '{}',\n  \
             name text NOT NULL CHECK (name ~ '^[a-z,]+$'),\n  \
             CONSTRAINT a_key UNIQUE (tenant_id, id)\n);\n\
             CREATE TABLE b (\n  tenant_id uuid NOT NULL,\n  a_id uuid NOT NULL REFERENCES a (id) ON DELETE CASCADE,\n  \
             PRIMARY KEY (tenant_id, a_id),\n  \
             CONSTRAINT b_a_fkey FOREIGN KEY (tenant_id, a_id) REFERENCES a (tenant_id, id),\n  \
             CHECK (a_id IS NOT NULL)\n);\n\
             CREATE UNIQUE INDEX a_name_key ON a (tenant_id, name);\n\
             ALTER TABLE a ENABLE ROW LEVEL SECURITY;\nALTER TABLE a FORCE ROW LEVEL SECURITY;\n\
             CREATE POLICY tenant_isolation ON a\n    USING (tenant_id = 1)\n    WITH CHECK (tenant_id = 2);",
        ])
        .unwrap();
        let a = schema.table("a").unwrap();
        assert_eq!(a.primary_key, ["id"]);
        let cols: Vec<(&str, &str, bool)> = a
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.sql_type.as_str(), c.not_null))
            .collect();
        assert_eq!(
            cols,
            [
                ("id", "uuid", true),
                ("tenant_id", "uuid", true),
                ("tags", "text[]", true),
                ("name", "text", true)
            ]
        );
        assert_eq!(
            a.columns[1].default.as_deref(),
            Some("NULLIF(current_setting('app.tenant_id', true), '')::uuid")
        );
        assert_eq!(a.columns[3].check.as_deref(), Some("name ~ '^[a-z,]+$'"));
        assert_eq!(
            a.uniques,
            [Unique {
                name: Some("a_key".into()),
                columns: vec!["tenant_id".into(), "id".into()]
            }]
        );
        assert_eq!(
            a.indexes,
            [Index {
                name: "a_name_key".into(),
                unique: true,
                keys: vec!["tenant_id".into(), "name".into()]
            }]
        );
        assert!(a.row_security && a.row_security_forced);
        assert_eq!(
            a.policies,
            [Policy {
                name: "tenant_isolation".into(),
                command: "ALL".into(),
                using: Some("tenant_id = 1".into()),
                with_check: Some("tenant_id = 2".into()),
            }]
        );
        let b = schema.table("b").unwrap();
        assert_eq!(b.primary_key, ["tenant_id", "a_id"]);
        assert_eq!(b.foreign_keys.len(), 2);
        assert_eq!(b.foreign_keys[0].on_delete.as_deref(), Some("CASCADE"));
        assert_eq!(b.foreign_keys[1].ref_columns, ["tenant_id", "id"]);
        assert_eq!(b.checks, [(None, "a_id IS NOT NULL".to_string())]);
        assert!(!b.row_security);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for sql in [
            "DROP TABLE a;",
            "CREATE TABLE a (id uuid);\nALTER TABLE a ADD COLUMN b text;",
            "CREATE INDEX i ON missing (a);",
            "CREATE TABLE a (id uuid GENERATED ALWAYS AS IDENTITY);",
            "CREATE TABLE a (id uuid",
            "CREATE TABLE a (id uuid); CREATE TABLE a (id uuid);",
        ] {
            assert!(schema_of([sql]).is_err(), "{sql}");
        }
    }
}
