//! Fuzz target: the configuration parser and the principal mapping rules. Input byte 0 even: the rest, as lossy
//! UTF-8, is a configuration file for `config::from_yaml`, with an empty folder as the base of relative paths
//! (every named file is missing); it never panics and refuses with at least one error, each naming its key.
//! Odd: the rest is `rules \0 subject` for `PrincipalMapper::parse` and, when the rules parse, `map`; neither
//! panics.
//! A file that could name a path outside the empty folder (a `/`, a YAML escape `\`, a `%` tag or directive, a
//! `!!binary` value) is skipped: the harness must not read /dev/zero.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use kaas_proxy::config::from_yaml;
use kaas_proxy::config::principal::PrincipalMapper;
use libfuzzer_sys::fuzz_target;

fn empty_base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join("kaas-proxy-fuzz-config-base");
        std::fs::create_dir_all(&dir).expect("create the empty base folder");
        let entries = std::fs::read_dir(&dir).expect("read the base folder").count();
        assert_eq!(entries, 0, "{} must be empty", dir.display());
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        configuration(&String::from_utf8_lossy(rest));
    } else {
        let (rules, subject) = match rest.iter().position(|&b| b == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &b""[..]),
        };
        principal_rules(&String::from_utf8_lossy(rules), &String::from_utf8_lossy(subject));
    }
});

fn configuration(text: &str) {
    if text.contains(['/', '\\', '%']) || text.contains("binary") {
        return;
    }
    match from_yaml(text, empty_base()) {
        Ok(settings) => panic!("accepted with every certificate file missing: {settings:?}"),
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for e in &errors {
                assert!(
                    !e.key.is_empty() && !e.message.is_empty(),
                    "an error without a key or message: {e:?}"
                );
            }
        }
    }
}

fn principal_rules(rules: &str, subject: &str) {
    if let Ok(mapper) = PrincipalMapper::parse(rules) {
        let _ = mapper.map(subject);
    }
}
