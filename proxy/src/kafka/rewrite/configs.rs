//! DescribeConfigs: the one response that names brokers' addresses in configuration values rather than in
//! endpoints. A broker describes its own `listeners`, `advertised.listeners`, the controllers' quorum and every
//! `listener.name.<listener>.*` setting (addresses, ports, listener names and key-store paths of the tenant's
//! cluster): the internal names the proxy hides everywhere else. Their values are redacted the way Kafka hides a
//! password: `value` null and `is_sensitive` true, in the configuration and in its synonyms; every other
//! configuration passes byte for byte.
//!
//! Neighbours: [`super::Walk`] holds the walk and its edits; [`super::super::apis`] routes DescribeConfigs here.

use super::super::wire::{Reader, WireResult};
use super::Walk;

/// Whether a broker configuration named `name` carries the cluster's own addresses or listener layout: its value
/// never reaches a client through the proxy.
pub fn hidden_config(name: &str) -> bool {
    matches!(
        name,
        "listeners"
            | "advertised.listeners"
            | "listener.security.protocol.map"
            | "inter.broker.listener.name"
            | "controller.listener.names"
            | "early.start.listeners"
            | "controller.quorum.voters"
            | "controller.quorum.bootstrap.servers"
    ) || name.starts_with("listener.name.")
}

// Smallest encodings: a config (name, value, read_only, source, is_sensitive, synonyms) and a synonym.
const CONFIG_MIN: usize = 1 + 1 + 1 + 1 + 1 + 1;
const SYNONYM_MIN: usize = 1 + 1 + 1;
const RESULT_MIN: usize = 2 + 1 + 1 + 1 + 1;

/// A null nullable string in the classic and the compact encoding.
fn null(flexible: bool) -> Vec<u8> {
    if flexible {
        vec![0]
    } else {
        (-1i16).to_be_bytes().to_vec()
    }
}

impl Walk<'_> {
    /// DescribeConfigs v1–v4 (kafka-protocol reads no v0; Kafka 4 removed it).
    pub(super) fn describe_configs(&mut self, r: &mut Reader<'_>, v: i16) -> WireResult<()> {
        r.i32("throttle_time_ms")?;
        r.each("results", RESULT_MIN, |r| {
            r.i16("results.error_code")?;
            r.nullable_string("results.error_message")?;
            r.i8("results.resource_type")?;
            r.string("results.resource_name")?;
            r.each("results.configs", CONFIG_MIN, |r| {
                let hidden = self.named_value(r, "configs.name", "configs.value")?;
                r.i8("configs.read_only")?;
                r.i8("configs.config_source")?;
                let sensitive = r.pos();
                let is_sensitive = r.i8("configs.is_sensitive")? != 0;
                if hidden && !is_sensitive && self.adv.is_some() {
                    self.scan.edits.replace(sensitive..sensitive + 1, vec![1]);
                }
                r.each("configs.synonyms", SYNONYM_MIN, |r| {
                    self.named_value(r, "synonyms.name", "synonyms.value")?;
                    r.i8("synonyms.source")?;
                    r.skip_tagged_fields("synonyms tags")
                })?;
                if v >= 3 {
                    r.i8("configs.config_type")?;
                    r.nullable_string("configs.documentation")?;
                }
                r.skip_tagged_fields("configs tags")
            })?;
            r.skip_tagged_fields("results tags")
        })?;
        r.skip_tagged_fields("tags")
    }

    /// A configuration's (or synonym's) `name` and nullable `value`; a hidden one's value is replaced by null.
    /// Whether it is hidden.
    fn named_value(
        &mut self,
        r: &mut Reader<'_>,
        name_field: &'static str,
        value_field: &'static str,
    ) -> WireResult<bool> {
        let name = r.string(name_field)?;
        let hidden = hidden_config(r.text(name, name_field)?);
        let start = r.pos();
        let value = r.nullable_string(value_field)?;
        if hidden && value.is_some() && self.adv.is_some() {
            self.scan.edits.replace(start..r.pos(), null(r.flexible()));
        }
        Ok(hidden)
    }
}
