//! Principal mapping for logs, with the rules and semantics of Kafka's `ssl.principal.mapping.rules`
//! (`RULE:^CN=(.*?),OU=.*$/$1/L,DEFAULT`), so a session's log lines name a client the way the tenant's brokers
//! do. Rules are tried in order; the first whose pattern matches the whole subject (RFC 2253) rewrites it
//! (`$1` groups; `L`/`U` lower- or upper-case the result); `DEFAULT` yields the subject as it is; no match
//! yields the subject too. Pure: parsed once when the configuration loads.

use regex::{Regex, RegexBuilder};

/// Longest pattern accepted. Kafka sets none, but real rules are a line long, and a pattern's compile time and
/// memory grow with it: a tenants file must not be able to stall a reload.
pub const MAX_PATTERN_CHARS: usize = 1024;
/// Most rules in one list.
pub const MAX_RULES: usize = 64;
/// Compiled size allowed for one pattern (the regex crate's `size_limit`; its default is 10 MiB): a thousand
/// Unicode word characters (`\w{1000}`) are refused, a subject pattern of a few hundred characters stays far
/// below.
const MAX_COMPILED_BYTES: usize = 1 << 20;

/// A parsed rule list.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace { whole: Regex, pattern: Regex, replacement: String, case: Case },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl PrincipalMapper {
    /// Parses a rule list as Kafka writes it; the error names the rule and what is wrong with it.
    pub fn parse(spec: &str) -> Result<PrincipalMapper, String> {
        let mut rules = Vec::new();
        let mut rest = spec.trim_start_matches([' ', ',', '\n', '\t']);
        while !rest.is_empty() {
            let n = rules.len() + 1;
            if n > MAX_RULES {
                return Err(format!("more than {MAX_RULES} rules"));
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) =
                    until_slash(after).ok_or(format!("rule {n}: pattern not ended by '/'"))?;
                let (replacement, after) =
                    until_slash(after).ok_or(format!("rule {n}: replacement not ended by '/'"))?;
                let (case, after) = match after.as_bytes().first() {
                    Some(b'L') => (Case::Lower, &after[1..]),
                    Some(b'U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                if pattern.chars().count() > MAX_PATTERN_CHARS {
                    return Err(format!("rule {n}: pattern longer than {MAX_PATTERN_CHARS} characters"));
                }
                let compile = |p: &str| {
                    RegexBuilder::new(p)
                        .size_limit(MAX_COMPILED_BYTES)
                        .dfa_size_limit(MAX_COMPILED_BYTES)
                        .build()
                        .map_err(|e| format!("rule {n}: pattern {pattern:?}: {e}"))
                };
                rules.push(Rule::Replace {
                    whole: compile(&format!("^(?:{pattern})$"))?,
                    pattern: compile(&pattern)?,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                let shown: String = rest.chars().take(20).collect();
                return Err(format!(
                    "rule {n}: expected RULE:pattern/replacement/[LU] or DEFAULT at {shown:?}"
                ));
            }
            let trimmed = rest.trim_start_matches([' ', '\n', '\t']);
            if !(trimmed.is_empty() || trimmed.starts_with(',')) {
                let shown: String = trimmed.chars().take(20).collect();
                return Err(format!("rule {n}: unexpected {shown:?} after it (rules are separated by ',')"));
            }
            rest = trimmed.trim_start_matches([' ', ',', '\n', '\t']);
        }
        Ok(PrincipalMapper { rules })
    }

    /// The principal name the brokers would derive from `subject`.
    pub fn map(&self, subject: &str) -> String {
        for rule in &self.rules {
            match rule {
                Rule::Default => return subject.to_owned(),
                Rule::Replace { whole, pattern, replacement, case } if whole.is_match(subject) => {
                    let mapped = pattern.replace_all(subject, replacement.as_str()).into_owned();
                    return match case {
                        Case::Keep => mapped,
                        Case::Lower => mapped.to_lowercase(),
                        Case::Upper => mapped.to_uppercase(),
                    };
                }
                Rule::Replace { .. } => {}
            }
        }
        subject.to_owned()
    }
}

/// Java's `$1` followed by letters means group 1 then the letters; the regex crate would read a group named
/// `1abc`, so groups are braced: `${1}abc`.
fn java_replacement(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len() + 4);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

/// The text up to the next unescaped `/` (with `\/` unescaped) and what follows that slash.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_like_kafka() {
        // Cases from Kafka's SslPrincipalMapperTest and its documentation.
        let cases: &[(&str, &str, &str)] = &[
            ("DEFAULT", "CN=alice,OU=payments,O=acme", "CN=alice,OU=payments,O=acme"),
            ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=duke,OU=ServiceUsers,O=Org", "duke"),
            (
                "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT",
                "CN=duke,OU=Admins,O=Org",
                "CN=duke,OU=Admins,O=Org",
            ),
            ("RULE:^CN=(.*?),OU=(.*?)$/$1@$2/L", "CN=Duke,OU=JavaSoft", "duke@javasoft"),
            ("RULE:^CN=(.*?),OU=(.*?)$/$1@$2/U", "CN=Duke,OU=JavaSoft", "DUKE@JAVASOFT"),
            ("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT", "OU=x,CN=Kafka.Client,O=y", "kafka.client"),
            ("RULE:^CN=(.*?),OU=.*$/$1/", "CN=carol", "CN=carol"),
            ("RULE:^CN=([^,]*)$/users\\/$1/", "CN=carol", "users/carol"),
            ("RULE:^CN=([^,]*)$/$1svc/", "CN=carol", "carolsvc"),
            ("", "CN=carol", "CN=carol"),
        ];
        for (spec, subject, want) in cases {
            let mapper = PrincipalMapper::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(mapper.map(subject), *want, "{spec} on {subject}");
        }
    }

    #[test]
    fn bad_rules_are_named() {
        for (spec, says) in [
            ("RULE:^CN=(.*?)$", "rule 1: pattern not ended"),
            ("DEFAULT,RULE:^CN=(.*?)$/$1", "rule 2: replacement not ended"),
            ("RULE:^CN=(.*$/$1/", "rule 1: pattern"),
            ("DEFAULTS", "rule 1: unexpected"),
            ("DEFAULT,NOPE", "rule 2: expected RULE"),
            ("RULE:a/b/X", "rule 1: unexpected \"X\""),
            ("RULE:^CN=\\w{1000}$/x/", "exceeds size limit"),
        ] {
            let err = PrincipalMapper::parse(spec).expect_err(spec);
            assert!(err.contains(says), "{spec}: {err}");
        }
        let long = format!("RULE:{}/x/", "a".repeat(MAX_PATTERN_CHARS + 1));
        let err = PrincipalMapper::parse(&long).expect_err("long pattern");
        assert_eq!(err, format!("rule 1: pattern longer than {MAX_PATTERN_CHARS} characters"));
        let many = vec!["RULE:a/b/"; MAX_RULES + 1].join(",");
        let err = PrincipalMapper::parse(&many).expect_err("too many rules");
        assert_eq!(err, format!("more than {MAX_RULES} rules"));
        assert!(PrincipalMapper::parse(&vec!["RULE:a/b/"; MAX_RULES].join(",")).is_ok());
    }
}
