//! `google.api.http` path templates: parsing and matching.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Matching follows grpc-gateway: a single-segment variable decodes every
//! percent-escape; a multi-segment one (`{name=shelves/*}`, `**`) keeps `%2F`
//! encoded so the value's own slashes stay distinguishable.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    Single,
    /// `**`: zero or more segments (last, before the verb).
    Rest,
}

/// A variable: the field path it binds and the segments it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    field_path: Vec<String>,
    /// Index of its first segment in [`Template::segments`].
    start: usize,
    /// Number of segments it covers in the template.
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

/// A field path and its value, taken from a matched path.
pub type Binding = (Vec<String>, String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed percent-encoding in the path")]
pub struct EscapeError;

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let error = |reason: &str| TemplateError { template: source.to_owned(), reason: reason.to_owned() };
        let path = source.strip_prefix('/').ok_or_else(|| error("must start with '/'"))?;
        // The verb is the last ':' outside braces.
        let (path, verb) = match last_colon_outside_braces(path) {
            Some(at) => (&path[..at], Some(path[at + 1..].to_owned())),
            None => (path, None),
        };
        if verb.as_deref() == Some("") {
            return Err(error("empty verb"));
        }
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut rest = path;
        while !rest.is_empty() || segments.is_empty() {
            if let Some(after_brace) = rest.strip_prefix('{') {
                let close = after_brace.find('}').ok_or_else(|| error("unclosed '{'"))?;
                let inner = &after_brace[..close];
                let (field, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
                if field.is_empty() || !field.split('.').all(is_ident) {
                    return Err(error("a variable needs a field path such as {name} or {book.id}"));
                }
                if pattern.contains(['{', '}']) {
                    return Err(error("variables cannot nest"));
                }
                let start = segments.len();
                for part in pattern.split('/') {
                    segments.push(parse_segment(part).map_err(|reason| error(&reason))?);
                }
                variables.push(Variable {
                    field_path: field.split('.').map(str::to_owned).collect(),
                    start,
                    len: segments.len() - start,
                });
                rest = &after_brace[close + 1..];
            } else {
                let end = rest.find('/').unwrap_or(rest.len());
                segments.push(parse_segment(&rest[..end]).map_err(|reason| error(&reason))?);
                rest = &rest[end..];
            }
            match rest.strip_prefix('/') {
                Some("") => return Err(error("trailing '/'")),
                Some(next) => rest = next,
                None if rest.is_empty() => break,
                None => return Err(error("expected '/' between segments")),
            }
        }
        if let Some(at) = segments.iter().position(|s| *s == Segment::Rest)
            && at != segments.len() - 1
        {
            return Err(error("'**' must be the last segment"));
        }
        Ok(Self { source: source.to_owned(), segments, variables, verb })
    }

    /// The template as written in the proto.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The field paths this template binds.
    pub fn bound_fields(&self) -> impl Iterator<Item = &[String]> {
        self.variables.iter().map(|v| v.field_path.as_slice())
    }

    /// How specific the template is, for choosing between matches: literal
    /// segments first (`/products/search` beats `/products/{id}`), then
    /// fewer wildcards.
    pub fn specificity(&self) -> (usize, usize, bool) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        let singles = self.segments.iter().filter(|s| **s == Segment::Single).count();
        (literals, singles, self.verb.is_some())
    }

    /// The OpenAPI form of the path: `/users/{id}`, `/v1/{name}:cancel`.
    pub fn openapi_path(&self) -> String {
        let mut out = String::new();
        let mut index = 0;
        while index < self.segments.len() {
            out.push('/');
            if let Some(variable) = self.variables.iter().find(|v| v.start == index) {
                out.push('{');
                out.push_str(&variable.field_path.join("."));
                out.push('}');
                index += variable.len;
                continue;
            }
            match &self.segments[index] {
                Segment::Literal(literal) => out.push_str(literal),
                Segment::Single => out.push('*'),
                Segment::Rest => out.push_str("**"),
            }
            index += 1;
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// A path this template matches, with `x` for every wildcard segment:
    /// enough to tell whether another template would take its requests.
    pub fn sample_path(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(literal) => out.push_str(literal),
                Segment::Single | Segment::Rest => out.push('x'),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// Matches a request path (still percent-encoded); returns the bindings.
    pub fn matches(&self, path: &str) -> Option<Result<Vec<Binding>, EscapeError>> {
        self.matches_parts(&split_path(path)?)
    }

    /// [`Self::matches`] for a path already split by [`split_path`]: a
    /// route table splits the path once, not once for every template it tries.
    pub fn matches_parts(&self, parts: &[&str]) -> Option<Result<Vec<Binding>, EscapeError>> {
        let verbless: Vec<&str>;
        let parts = match &self.verb {
            None => parts,
            Some(verb) => {
                let (last, init) = parts.split_last()?;
                let last = last.strip_suffix(verb.as_str())?.strip_suffix(':')?;
                verbless = if init.is_empty() && last.is_empty() { Vec::new() } else { [init, &[last]].concat() };
                &verbless
            }
        };
        // Each segment covers the part at its own index, but a last `**`,
        // which covers all the parts from there (none, or any number).
        let covers_rest = self.segments.last() == Some(&Segment::Rest);
        let fixed = self.segments.len() - usize::from(covers_rest);
        if parts.len() < fixed || (!covers_rest && parts.len() != fixed) {
            return None;
        }
        for (segment, part) in self.segments[..fixed].iter().zip(parts) {
            let fits = match segment {
                Segment::Literal(literal) => part == literal,
                Segment::Single => !part.is_empty(),
                Segment::Rest => unreachable!("'**' is the last segment (checked when parsed)"),
            };
            if !fits {
                return None;
            }
        }
        let covered = |segment: usize| if segment < fixed { (segment, segment + 1) } else { (fixed, parts.len()) };
        let mut bindings = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let from = covered(variable.start).0;
            let to = covered(variable.start + variable.len - 1).1;
            let single = variable.len == 1 && self.segments[variable.start] == Segment::Single;
            let raw = parts[from..to].join("/");
            let value = match percent_decode(&raw, !single) {
                Ok(value) => value,
                Err(error) => return Some(Err(error)),
            };
            bindings.push((variable.field_path.clone(), value));
        }
        Some(Ok(bindings))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    match part {
        "" => Err("empty segment".to_owned()),
        "*" => Ok(Segment::Single),
        "**" => Ok(Segment::Rest),
        literal if literal.contains(['{', '}', '*', '?', '#']) => Err(format!("bad literal segment {literal:?}")),
        literal => Ok(Segment::Literal(literal.to_owned())),
    }
}

fn is_ident(part: &str) -> bool {
    let mut chars = part.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn last_colon_outside_braces(path: &str) -> Option<usize> {
    let mut depth = 0;
    let mut found = None;
    for (index, c) in path.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ':' if depth == 0 => found = Some(index),
            _ => {}
        }
    }
    // A colon before the last slash is part of a literal, not a verb.
    found.filter(|at| !path[*at..].contains('/'))
}

/// A request path's parts between its slashes, after the leading one it
/// must have (none for `/`), for [`Template::matches_parts`].
pub fn split_path(path: &str) -> Option<Vec<&str>> {
    let path = path.strip_prefix('/')?;
    Some(if path.is_empty() { Vec::new() } else { path.split('/').collect() })
}

/// Decodes `%XX` escapes; with `keep_slashes`, `%2F` stays encoded.
pub fn percent_decode(raw: &str, keep_slashes: bool) -> Result<String, EscapeError> {
    String::from_utf8(percent_decode_bytes(raw, keep_slashes)?).map_err(|_| EscapeError)
}

/// Decodes `application/x-www-form-urlencoded` text, as a query's keys and
/// values are (`+` is a space).
pub fn form_decode(raw: &str) -> Option<String> {
    percent_decode(&raw.replace('+', " "), false).ok()
}

/// [`form_decode`], to bytes that need not be UTF-8.
pub fn form_decode_bytes(raw: &str) -> Option<Vec<u8>> {
    percent_decode_bytes(&raw.replace('+', " "), false).ok()
}

/// The bytes `%XX` escapes stand for, UTF-8 or not (a binary message in a
/// query); with `keep_slashes`, `%2F` stays encoded.
pub fn percent_decode_bytes(raw: &str, keep_slashes: bool) -> Result<Vec<u8>, EscapeError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3).ok_or(EscapeError)?;
            let hex = std::str::from_utf8(hex).map_err(|_| EscapeError)?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| EscapeError)?;
            if keep_slashes && byte == b'/' {
                out.extend_from_slice(&bytes[index..index + 3]);
            } else {
                out.push(byte);
            }
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        let template = Template::parse(template).unwrap();
        template.matches(path).map(|b| b.unwrap().into_iter().map(|(f, v)| (f.join("."), v)).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(list.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect())
    }

    #[test]
    fn literal_and_single_variable() {
        assert_eq!(bindings("/users", "/users"), pairs(&[]));
        assert_eq!(bindings("/users/{id}", "/users/42"), pairs(&[("id", "42")]));
        assert_eq!(bindings("/users/{id}", "/users"), None);
        assert_eq!(bindings("/users/{id}", "/users/42/x"), None);
        assert_eq!(bindings("/users/{id}", "/users/"), None);
        assert_eq!(bindings("/orders/user/{user_id}", "/orders/user/u1"), pairs(&[("user_id", "u1")]));
    }

    #[test]
    fn multi_segment_variables_and_double_wildcard() {
        assert_eq!(bindings("/v1/{name=shelves/*}", "/v1/shelves/s1"), pairs(&[("name", "shelves/s1")]));
        assert_eq!(bindings("/v1/{name=shelves/*}", "/v1/books/s1"), None);
        assert_eq!(
            bindings("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b2"),
            pairs(&[("name", "shelves/s1/books/b2")])
        );
        assert_eq!(bindings("/files/{path=**}", "/files/a/b/c.txt"), pairs(&[("path", "a/b/c.txt")]));
        assert_eq!(bindings("/files/{path=**}", "/files"), pairs(&[("path", "")]));
        assert_eq!(bindings("/static/**", "/static/x/y"), pairs(&[]));
        assert_eq!(bindings("/a/*/c", "/a/b/c"), pairs(&[]));
    }

    #[test]
    fn nested_field_paths() {
        assert_eq!(
            bindings("/v1/messages/{message_id}/{sub.subfield}", "/v1/messages/123/foo"),
            pairs(&[("message_id", "123"), ("sub.subfield", "foo")])
        );
    }

    #[test]
    fn custom_verbs() {
        assert_eq!(bindings("/orders/{id}:cancel", "/orders/o1:cancel"), pairs(&[("id", "o1")]));
        assert_eq!(bindings("/orders/{id}:cancel", "/orders/o1:pay"), None);
        assert_eq!(bindings("/orders/{id}:cancel", "/orders/o1"), None);
        assert_eq!(bindings("/orders/{id}", "/orders/o1:cancel"), pairs(&[("id", "o1:cancel")]));
        assert_eq!(bindings("/v1:batchGet", "/v1:batchGet"), pairs(&[]));
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(bindings("/users/{id}", "/users/a%20b"), pairs(&[("id", "a b")]));
        assert_eq!(bindings("/users/{id}", "/users/a%2Fb"), pairs(&[("id", "a/b")]));
        assert_eq!(bindings("/v1/{name=shelves/*}", "/v1/shelves/a%2Fb"), pairs(&[("name", "shelves/a%2Fb")]));
        let template = Template::parse("/users/{id}").unwrap();
        assert_eq!(template.matches("/users/%zz"), Some(Err(EscapeError)));
        assert_eq!(template.matches("/users/%e2%82"), Some(Err(EscapeError)));
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in ["users", "/users/", "/{", "/{}", "/{a=**}/b", "/**/x", "/a:", "/{a={b}}", "/a//b", "/{1abc}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn specificity_prefers_literals() {
        let search = Template::parse("/products/search").unwrap();
        let by_id = Template::parse("/products/{id}").unwrap();
        assert!(search.specificity() > by_id.specificity());
    }

    #[test]
    fn openapi_paths() {
        assert_eq!(Template::parse("/users/{id}").unwrap().openapi_path(), "/users/{id}");
        assert_eq!(Template::parse("/orders/{id}:cancel").unwrap().openapi_path(), "/orders/{id}:cancel");
        assert_eq!(Template::parse("/v1/{name=shelves/*}").unwrap().openapi_path(), "/v1/{name}");
    }
}
