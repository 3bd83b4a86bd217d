//! DNS-01 (RFC 8555 §8.4) through an operator's hook: `acme.dns01_hook` is run as `HOOK... set NAME VALUE` to
//! publish the TXT record `NAME` (`_acme-challenge.<name>`, no trailing dot) with `VALUE` beside any others (a
//! wildcard and its base name share one record name), and as `HOOK... clear NAME VALUE` once the order is
//! over. The hook must return only when the record is served (propagation is its job); a non-zero exit, or
//! none within [`HOOK_TIMEOUT`], fails the order. Neighbour: [`super::order`] runs it per authorization.

use std::process::Stdio;
use std::time::Duration;

/// How long one run of the hook may take (DNS providers' APIs and propagation checks are slow).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a run of the hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program could not be started.
    #[error("dns01_hook {program}: cannot run: {source}")]
    Spawn {
        /// The hook's program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// It exited with a failure; holds the end of what it wrote to stderr.
    #[error("dns01_hook {action} {name}: {status}: {stderr}")]
    Failed {
        /// `set` or `clear`.
        action: &'static str,
        /// The TXT record name.
        name: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its last 512 bytes of stderr.
        stderr: String,
    },
    /// It did not finish within [`HOOK_TIMEOUT`] (it is killed).
    #[error("dns01_hook {action} {name}: no answer within {HOOK_TIMEOUT:?}")]
    Timeout {
        /// `set` or `clear`.
        action: &'static str,
        /// The TXT record name.
        name: String,
    },
}

/// The TXT record name validating `identifier` (a wildcard's is its base name's).
pub fn record_name(identifier: &str) -> String {
    format!("_acme-challenge.{}", identifier.strip_prefix("*.").unwrap_or(identifier))
}

/// Runs `hook` (program and arguments) with `action name value` appended.
pub async fn run(hook: &[String], action: &'static str, name: &str, value: &str) -> Result<(), HookError> {
    let Some((program, args)) = hook.split_first() else {
        return Err(HookError::Spawn { program: String::new(), source: std::io::ErrorKind::NotFound.into() });
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .args([action, name, value])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn { program: program.clone(), source })?;
    let output = match tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => return Err(HookError::Spawn { program: program.clone(), source }),
        Err(_) => return Err(HookError::Timeout { action, name: name.to_owned() }),
    };
    if output.status.success() {
        return Ok(());
    }
    let tail = &output.stderr[output.stderr.len().saturating_sub(512)..];
    Err(HookError::Failed {
        action,
        name: name.to_owned(),
        status: output.status,
        stderr: String::from_utf8_lossy(tail).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names() {
        let cases = [
            ("acme.kaas.localhost", "_acme-challenge.acme.kaas.localhost"),
            ("*.acme.kaas.localhost", "_acme-challenge.acme.kaas.localhost"),
        ];
        for (identifier, want) in cases {
            assert_eq!(record_name(identifier), want);
        }
    }

    #[tokio::test]
    async fn the_hook_gets_its_arguments_and_failures_are_reported() {
        let sh =
            |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string(), "hook".to_string()];
        run(&sh(r#"test "$1 $2 $3" = "set _acme-challenge.a v1""#), "set", "_acme-challenge.a", "v1")
            .await
            .expect("hook ran with set NAME VALUE");
        let err = run(&sh("echo no such zone >&2; exit 3"), "clear", "n", "v").await.expect_err("exit 3");
        assert!(matches!(&err, HookError::Failed { stderr, .. } if stderr == "no such zone"), "{err}");
        let err = run(&["/nonexistent/hook".to_string()], "set", "n", "v").await.expect_err("missing");
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
    }
}
